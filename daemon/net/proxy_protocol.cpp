#include "sluice/net/proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

namespace sluice::proxy_protocol {

namespace {

constexpr std::string_view kV1Signature = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kV2FixedBytes = 16;
constexpr std::size_t kV2MaxAddressBytes = kV2MaxBytes - kV2FixedBytes;
constexpr std::size_t kV2Ipv4Bytes = 12;  // two addresses of 4 bytes, two ports
constexpr std::size_t kV2Ipv6Bytes = 36;  // two addresses of 16 bytes, two ports

// The v2 family byte (address family << 4 | transport).
enum Family : unsigned char {
  unspec = 0x00,
  tcp4 = 0x11,
  udp4 = 0x12,
  tcp6 = 0x21,
  udp6 = 0x22,
  unix_stream = 0x31,
  unix_dgram = 0x32,
};

Parsed invalid(const char* why) {
  Parsed parsed;
  parsed.status = Status::invalid;
  parsed.error = why;
  return parsed;
}

Parsed local(std::size_t length) {
  Parsed parsed;
  parsed.status = Status::done;
  parsed.length = length;
  parsed.local = true;
  return parsed;
}

// Whether `received` may still become `signature` (a prefix of it, or starting with it).
bool may_be(std::string_view received, std::string_view signature) {
  const std::size_t n = std::min(received.size(), signature.size());
  return received.substr(0, n) == signature.substr(0, n);
}

// A v1 port: decimal 0..65535, no sign, no leading zero.
std::optional<unsigned short> v1_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<unsigned short>(value);
}

// A socket address of `family` (AF_INET or AF_INET6) from the address's bytes and a port.
sockaddr_storage make_address(int family, const void* ip, unsigned short port) {
  sockaddr_storage out{};
  if (family == AF_INET) {
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&v4.sin_addr, ip, 4);
    std::memcpy(&out, &v4, sizeof v4);
  } else {
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&v6.sin6_addr, ip, 16);
    std::memcpy(&out, &v6, sizeof v6);
  }
  return out;
}

// A v1 address of `family` (inet_pton: dotted quad without leading zeros, or IPv6 text) and port.
bool v1_address(int family, std::string_view address, std::string_view port, sockaddr_storage& out) {
  const auto number = v1_port(port);
  char text[INET6_ADDRSTRLEN] = {};
  unsigned char ip[16] = {};
  if (!number || address.empty() || address.size() >= sizeof text) return false;
  std::memcpy(text, address.data(), address.size());
  if (inet_pton(family, text, ip) != 1) return false;
  out = make_address(family, ip, *number);
  return true;
}

Parsed parse_v1(std::string_view received) {
  const std::size_t end = received.substr(0, kV1MaxBytes).find("\r\n");
  if (end == std::string_view::npos) {
    return received.size() >= kV1MaxBytes ? invalid("v1 header without CRLF in its first 107 bytes")
                                          : Parsed{};
  }
  std::string_view line = received.substr(kV1Signature.size(), end - kV1Signature.size());
  std::string_view fields[5];
  std::size_t count = 0;
  for (;;) {
    const std::size_t space = line.find(' ');
    if (count == 5) return invalid("v1 header with more than 5 fields");
    fields[count++] = line.substr(0, space);
    if (fields[count - 1].empty()) {
      // "PROXY UNKNOWN" alone is complete; anything else empty is a doubled or trailing space.
      if (count == 1) return invalid("v1 header without a protocol");
      return invalid("v1 header with an empty field");
    }
    if (fields[0] == "UNKNOWN") return local(end + 2);  // what follows UNKNOWN is ignored
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  int family = 0;
  if (fields[0] == "TCP4") {
    family = AF_INET;
  } else if (fields[0] == "TCP6") {
    family = AF_INET6;
  } else {
    return invalid("v1 header with a protocol other than TCP4, TCP6 or UNKNOWN");
  }
  if (count != 5) return invalid("v1 header without its 4 address fields");
  Parsed parsed;
  if (!v1_address(family, fields[1], fields[3], parsed.source) ||
      !v1_address(family, fields[2], fields[4], parsed.destination)) {
    return invalid("v1 header with a bad address or port");
  }
  parsed.status = Status::done;
  parsed.length = end + 2;
  return parsed;
}

unsigned short v2_port(const unsigned char* bytes) {
  return static_cast<unsigned short>((bytes[0] << 8) | bytes[1]);
}

Parsed parse_v2(std::string_view received) {
  if (received.size() < kV2FixedBytes) return Parsed{};
  const auto* bytes = static_cast<const unsigned char*>(static_cast<const void*>(received.data()));
  if ((bytes[12] >> 4) != 2) return invalid("v2 header with a version other than 2");
  const unsigned command = bytes[12] & 0x0Fu;
  if (command > 1) return invalid("v2 header with a command other than LOCAL or PROXY");
  const std::size_t length = (std::size_t{bytes[14]} << 8) | bytes[15];
  if (length > kV2MaxAddressBytes) return invalid("v2 header longer than 536 bytes");
  const unsigned char family = bytes[13];
  std::size_t needed = 0;
  switch (family) {
    case tcp4: needed = kV2Ipv4Bytes; break;
    case tcp6: needed = kV2Ipv6Bytes; break;
    case unspec:
    case udp4:
    case udp6:
    case unix_stream:
    case unix_dgram: break;  // valid, without addresses we could use: as UNSPEC (the spec's fallback)
    default:
      if (command == 1) return invalid("v2 header with an unknown address family or transport");
  }
  if (command == 1 && length < needed) return invalid("v2 header too short for its address family");
  if (received.size() < kV2FixedBytes + length) return Parsed{};
  if (command == 0 || needed == 0) return local(kV2FixedBytes + length);  // LOCAL: the socket's own
  Parsed parsed;
  const unsigned char* block = bytes + kV2FixedBytes;
  const int address_family = family == tcp4 ? AF_INET : AF_INET6;
  const std::size_t ip_bytes = family == tcp4 ? 4 : 16;  // then the source's and destination's ports
  parsed.source = make_address(address_family, block, v2_port(block + 2 * ip_bytes));
  parsed.destination = make_address(address_family, block + ip_bytes, v2_port(block + 2 * ip_bytes + 2));
  parsed.status = Status::done;
  parsed.length = kV2FixedBytes + length;  // TLVs, if any, are skipped
  return parsed;
}

// An address copied out of `address`, IPv4-mapped IPv6 made IPv4; family AF_UNSPEC for others.
sockaddr_storage unmapped(const sockaddr* address) {
  sockaddr_storage out{};
  if (address == nullptr) return out;
  if (address->sa_family == AF_INET) {
    std::memcpy(&out, address, sizeof(sockaddr_in));
  } else if (address->sa_family == AF_INET6) {
    sockaddr_in6 v6{};
    std::memcpy(&v6, address, sizeof v6);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      v4.sin_port = v6.sin6_port;
      std::memcpy(&v4.sin_addr, &v6.sin6_addr.s6_addr[12], 4);
      std::memcpy(&out, &v4, sizeof v4);
    } else {
      std::memcpy(&out, &v6, sizeof v6);
    }
  }
  return out;
}

struct Raw {
  const void* address = nullptr;
  std::size_t bytes = 0;
  unsigned short port = 0;  // host order
};

Raw raw(const sockaddr_storage& address, sockaddr_in& v4, sockaddr_in6& v6) {
  if (address.ss_family == AF_INET) {
    std::memcpy(&v4, &address, sizeof v4);
    return {&v4.sin_addr, 4, ntohs(v4.sin_port)};
  }
  std::memcpy(&v6, &address, sizeof v6);
  return {&v6.sin6_addr, 16, ntohs(v6.sin6_port)};
}

std::size_t append(Buffer& out, std::size_t at, std::string_view text) {
  std::memcpy(out.data() + at, text.data(), text.size());
  return at + text.size();
}

std::size_t append_v1(Buffer& out, std::size_t at, int family, const Raw& address) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(family, address.address, text, sizeof text);
  at = append(out, at, " ");
  return append(out, at, text);
}

std::size_t append_port(Buffer& out, std::size_t at, unsigned short port) {
  out[at++] = ' ';
  return static_cast<std::size_t>(std::to_chars(out.data() + at, out.data() + out.size(), port).ptr - out.data());
}

}  // namespace

Parsed parse(std::string_view received) {
  if (may_be(received, kV2Signature)) {
    return received.size() < kV2Signature.size() ? Parsed{} : parse_v2(received);
  }
  if (may_be(received, kV1Signature)) {
    return received.size() < kV1Signature.size() ? Parsed{} : parse_v1(received);
  }
  return invalid("no PROXY protocol signature");
}

std::string_view local_header(ProxyVersion version) {
  static constexpr char kV2Local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
  if (version == ProxyVersion::v2) return {kV2Local, kV2FixedBytes};
  if (version == ProxyVersion::v1) return "PROXY UNKNOWN\r\n";
  return {};
}

std::size_t write_header(ProxyVersion version, const sockaddr* source, const sockaddr* destination, Buffer& out) {
  const sockaddr_storage from = unmapped(source);
  const sockaddr_storage to = unmapped(destination);
  if (from.ss_family == AF_UNSPEC || from.ss_family != to.ss_family) {
    const std::string_view header = local_header(version);
    return append(out, 0, header);
  }
  sockaddr_in v4[2];
  sockaddr_in6 v6[2];
  const Raw src = raw(from, v4[0], v6[0]);
  const Raw dst = raw(to, v4[1], v6[1]);
  const bool ipv4 = from.ss_family == AF_INET;
  if (version == ProxyVersion::v1) {
    std::size_t at = append(out, 0, ipv4 ? "PROXY TCP4" : "PROXY TCP6");
    at = append_v1(out, at, from.ss_family, src);
    at = append_v1(out, at, from.ss_family, dst);
    at = append_port(out, at, src.port);
    at = append_port(out, at, dst.port);
    return append(out, at, "\r\n");
  }
  if (version != ProxyVersion::v2) return 0;
  std::size_t at = append(out, 0, kV2Signature);
  const std::size_t block = ipv4 ? kV2Ipv4Bytes : kV2Ipv6Bytes;
  const unsigned char fixed[4] = {0x21, ipv4 ? tcp4 : tcp6, 0, static_cast<unsigned char>(block)};
  std::memcpy(out.data() + at, fixed, sizeof fixed);
  at += sizeof fixed;
  std::memcpy(out.data() + at, src.address, src.bytes);
  std::memcpy(out.data() + at + src.bytes, dst.address, dst.bytes);
  at += 2 * src.bytes;
  const unsigned char ports[4] = {static_cast<unsigned char>(src.port >> 8), static_cast<unsigned char>(src.port),
                                  static_cast<unsigned char>(dst.port >> 8), static_cast<unsigned char>(dst.port)};
  std::memcpy(out.data() + at, ports, sizeof ports);
  return at + sizeof ports;
}

}  // namespace sluice::proxy_protocol
