#pragma once
// The PROXY protocol (HAProxy's doc/proxy-protocol.txt), versions 1 (text) and 2 (binary): the
// header a proxy puts first on a connection to say whose it is. Pure: bytes in, addresses out, and
// the reverse; the sockets are the listener's and the session's.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace sluice {

enum class ProxyVersion { off, v1, v2 };

namespace proxy_protocol {

inline constexpr std::size_t kV1MaxBytes = 107;  // the spec's bound ("PROXY UNKNOWN" + the longest TCP6 line)
inline constexpr std::size_t kV2MaxBytes = 536;  // 16 fixed + at most 520 of addresses and TLVs
inline constexpr std::size_t kMaxWrittenBytes = kV1MaxBytes;  // what write_header can produce

enum class Status { need_more, done, invalid };

struct Parsed {
  Status status = Status::need_more;
  std::size_t length = 0;   // done: the header's bytes; the client's own bytes follow them
  bool local = false;       // done: no addresses (v2 LOCAL, UNSPEC/UNIX/UDP, v1 UNKNOWN): use the socket's
  sockaddr_storage source{};       // done and not local: the client
  sockaddr_storage destination{};  // done and not local: the address the client connected to
  const char* error = "";   // invalid: what is wrong
};

/// Parses the first bytes of a connection: all received so far (a header split over several reads
/// is given again, longer). need_more means every byte given may still be part of a header, so
/// whoever reads may take them all and come back with more.
Parsed parse(std::string_view received);

using Buffer = std::array<char, kMaxWrittenBytes>;

/// Writes the header saying that `source` connected to `destination` (AF_INET or AF_INET6) into
/// `out`; returns its length. IPv4-mapped IPv6 addresses are written as IPv4; two families that
/// still differ (or any other) give v1 "UNKNOWN" / v2 LOCAL.
std::size_t write_header(ProxyVersion version, const sockaddr* source, const sockaddr* destination, Buffer& out);

/// A header without addresses (v1 "PROXY UNKNOWN", v2 LOCAL): a health check's, which is nobody's.
std::string_view local_header(ProxyVersion version);

}  // namespace proxy_protocol
}  // namespace sluice
