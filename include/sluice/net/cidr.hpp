#pragma once
// Source address ranges for listener allow lists: "10.0.0.0/8", "::/0", or a bare address.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace sluice {

struct Cidr {
  int family = 0;                        // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  // network address, network byte order (4 used for IPv4)
  int prefix_bits = 0;                   // 0..32 or 0..128

  /// True when `address` (AF_INET or AF_INET6) lies in this range. An IPv4-mapped IPv6 address
  /// (::ffff:a.b.c.d) matches IPv4 ranges.
  bool contains(const sockaddr* address) const;

  /// "10.0.0.0/8", "::/0": always with the prefix length.
  std::string to_string() const;

  /// Parses "addr/prefix" or "addr" (a full-length prefix). Host bits must be zero.
  /// On failure returns nullopt and, when `why` is given, says what is wrong.
  static std::optional<Cidr> parse(std::string_view text, std::string* why = nullptr);

  bool operator==(const Cidr&) const = default;
};

}  // namespace sluice
