#include "sluice/net/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "sluice/uv/handle.hpp"

namespace sluice {
namespace {

// ::ffff:0:0/96, the prefix of an IPv4 address carried in an IPv6 socket address.
constexpr std::array<std::uint8_t, 12> ipv4_mapped_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::optional<Cidr> fail(std::string* why, std::string message) {
  if (why != nullptr) {
    *why = std::move(message);
  }
  return std::nullopt;
}

// True when the first `prefix_bits` bits of `a` and `b` are equal.
bool same_prefix(const std::uint8_t* a, const std::uint8_t* b, int prefix_bits) {
  int whole_bytes = prefix_bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole_bytes)) != 0) {
    return false;
  }
  int rest_bits = prefix_bits % 8;
  if (rest_bits == 0) {
    return true;
  }
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest_bits));
  return (a[whole_bytes] & mask) == (b[whole_bytes] & mask);
}

// Zeroes the bits after the first `prefix_bits`; returns true when any was set.
bool clear_host_bits(std::array<std::uint8_t, 16>& bytes, int address_bits, int prefix_bits) {
  bool had_host_bits = false;
  for (int bit = prefix_bits; bit < address_bits; ++bit) {
    auto mask = static_cast<std::uint8_t>(0x80 >> (bit % 8));
    auto& byte = bytes[static_cast<std::size_t>(bit / 8)];
    had_host_bits |= (byte & mask) != 0;
    byte = static_cast<std::uint8_t>(byte & ~mask);
  }
  return had_host_bits;
}

}  // namespace

bool Cidr::contains(const sockaddr* address) const {
  if (address == nullptr) {
    return false;
  }
  if (address->sa_family == AF_INET) {
    // s_addr is in network order: its bytes are the address's, first to last.
    std::array<std::uint8_t, 4> raw{};
    std::memcpy(raw.data(), &as_ipv4(address)->sin_addr.s_addr, raw.size());
    return family == AF_INET && same_prefix(raw.data(), bytes.data(), prefix_bits);
  }
  if (address->sa_family == AF_INET6) {
    const std::uint8_t* raw = as_ipv6(address)->sin6_addr.s6_addr;
    if (family == AF_INET6) {
      return same_prefix(raw, bytes.data(), prefix_bits);
    }
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; IPv4 ranges must still apply.
    bool is_mapped = std::equal(ipv4_mapped_prefix.begin(), ipv4_mapped_prefix.end(), raw);
    return family == AF_INET && is_mapped && same_prefix(raw + 12, bytes.data(), prefix_bits);
  }
  return false;
}

std::string Cidr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix_bits);
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* why) {
  // inet_pton reads the address as a C string: a NUL would silently cut it.
  if (text.find('\0') != std::string_view::npos) return fail(why, "address range contains a NUL byte");
  auto slash = text.find('/');
  std::string address(text.substr(0, slash));

  Cidr cidr;
  cidr.family = address.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(cidr.family, address.c_str(), cidr.bytes.data()) != 1) {
    return fail(
        why, "'" + address + "' is not a valid " + (cidr.family == AF_INET6 ? "IPv6" : "IPv4") + " address");
  }
  int address_bits = cidr.family == AF_INET6 ? 128 : 32;
  std::string range = "0.." + std::to_string(address_bits);

  cidr.prefix_bits = address_bits;
  if (slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    bool all_digits = !prefix.empty() &&
                      std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!all_digits) {
      return fail(why, "prefix length '" + std::string(prefix) + "' is not a number " + range);
    }
    unsigned long long bits = 0;
    auto result = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
    if (result.ec != std::errc{} || bits > static_cast<unsigned long long>(address_bits)) {
      return fail(why, "prefix length " + std::string(prefix) + " is out of range " + range);
    }
    cidr.prefix_bits = static_cast<int>(bits);
  }

  // "10.0.0.1/8" is almost always a typo for a host or for 10.0.0.0/8; refuse to guess which.
  if (clear_host_bits(cidr.bytes, address_bits, cidr.prefix_bits)) {
    return fail(why,
                std::string("'").append(text) + "' has host bits set; did you mean '" + cidr.to_string() + "'?");
  }
  return cidr;
}

}  // namespace sluice
