#pragma once
// Network endpoints in configuration: "host:port" or "[v6-literal]:port".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct Endpoint {
  std::string host;    // IPv4 literal, IPv6 literal (without brackets) or DNS name
  std::uint16_t port;  // 0 only makes sense for a bind address (the kernel picks one)

  /// "host:port", with brackets around IPv6 literals.
  std::string to_string() const;

  bool operator==(const Endpoint&) const = default;
};

/// Parses "host:port" / "[v6]:port". The port must be 0..65535; a host containing ':' must be
/// bracketed; a DNS name must be made of letters, digits, '-', '_' and '.'.
/// On failure returns nullopt and, when `why` is given, says what is wrong.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* why = nullptr);

}  // namespace sluice
