#include "sluice/net/endpoint.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstddef>

namespace sluice {
namespace {

constexpr std::size_t max_dns_name_length = 253;

bool set_why(std::string* why, std::string message) {
  if (why != nullptr) {
    *why = std::move(message);
  }
  return false;
}

bool is_valid_ipv4(const std::string& host) {
  in_addr address{};
  return inet_pton(AF_INET, host.c_str(), &address) == 1;
}

bool is_valid_ipv6(const std::string& host) {
  in6_addr address{};
  return inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

bool is_dns_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

bool parse_port(std::string_view text, std::uint16_t& port, std::string* why) {
  if (text.empty()) {
    return set_why(why, "missing port (expected host:port)");
  }
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return set_why(why, "port '" + std::string(text) + "' is not a number 0..65535");
  }
  unsigned long long value = 0;
  auto [rest, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || value > 65535) {
    return set_why(why, "port " + std::string(text) + " is out of range 0..65535");
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

// Checks an unbracketed host: an IPv4 literal when it looks like one, else a DNS name.
bool check_plain_host(const std::string& host, std::string* why) {
  if (host.empty()) {
    return set_why(why, "missing host (expected host:port)");
  }
  // "300.1.1.1" or "10.1" must not slip through as DNS names: digits and dots mean IPv4.
  bool looks_ipv4 =
      std::all_of(host.begin(), host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  if (looks_ipv4) {
    return is_valid_ipv4(host) || set_why(why, "'" + host + "' is not a valid IPv4 address");
  }
  if (host.size() > max_dns_name_length) {
    return set_why(why, "host name is longer than 253 characters");
  }
  auto bad = std::find_if_not(host.begin(), host.end(), is_dns_char);
  if (bad != host.end()) {
    return set_why(why, "host name '" + host + "' contains '" + std::string(1, *bad) +
                            "'; only letters, digits, '-', '_' and '.' are allowed");
  }
  return true;
}

}  // namespace

std::string Endpoint::to_string() const {
  bool is_ipv6 = host.find(':') != std::string::npos;
  return (is_ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* why) {
  Endpoint endpoint;
  std::string_view port_text;

  if (text.empty()) {
    set_why(why, "address is empty (expected host:port)");
    return std::nullopt;
  }
  // inet_pton and getaddrinfo read the host as a C string: a NUL would silently cut it.
  if (text.find('\0') != std::string_view::npos) {
    set_why(why, "address contains a NUL byte");
    return std::nullopt;
  }
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      set_why(why, "missing ']' after IPv6 address");
      return std::nullopt;
    }
    endpoint.host = std::string(text.substr(1, close - 1));
    if (!is_valid_ipv6(endpoint.host)) {
      set_why(why, "'" + endpoint.host + "' is not a valid IPv6 address");
      return std::nullopt;
    }
    std::string_view after = text.substr(close + 1);
    if (after.empty() || after == ":") {
      set_why(why, "missing port (expected [host]:port)");
      return std::nullopt;
    }
    if (after.front() != ':') {
      set_why(why, "expected ':' and a port after ']'");
      return std::nullopt;
    }
    port_text = after.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      set_why(why, "missing port (expected host:port)");
      return std::nullopt;
    }
    if (text.find(':') != colon) {
      set_why(why, "IPv6 address must be in brackets, e.g. [::1]:8080");
      return std::nullopt;
    }
    endpoint.host = std::string(text.substr(0, colon));
    if (!check_plain_host(endpoint.host, why)) {
      return std::nullopt;
    }
    port_text = text.substr(colon + 1);
  }

  if (!parse_port(port_text, endpoint.port, why)) {
    return std::nullopt;
  }
  return endpoint;
}

}  // namespace sluice
