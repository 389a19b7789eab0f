#include "cli.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice::tools {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  if (!all_digits(text) || text.size() > 19) return std::nullopt;  // 19 digits cannot overflow 64 bits
  std::uint64_t value = 0;
  for (char c : text) value = value * 10 + static_cast<std::uint64_t>(c - '0');
  return value;
}

std::optional<double> parse_non_negative(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(value) || value < 0) return std::nullopt;
  // strtod also takes "inf", "nan", hex and leading blanks; only plain decimals are meant here.
  if (copy.find_first_not_of("0123456789.eE+-") != std::string::npos) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> parse_duration_ns(std::string_view text) {
  const std::size_t unit_at = text.find_first_not_of("0123456789.");
  if (unit_at == 0 || unit_at == std::string_view::npos) return std::nullopt;  // a unit is required
  const std::string_view number = text.substr(0, unit_at);
  const std::string_view unit = text.substr(unit_at);
  if (std::count(number.begin(), number.end(), '.') > 1 || number.front() == '.' || number.back() == '.') {
    return std::nullopt;
  }
  double scale = 0;
  if (unit == "ns") scale = 1;
  else if (unit == "us" || unit == "\xC2\xB5s") scale = 1e3;
  else if (unit == "ms") scale = 1e6;
  else if (unit == "s") scale = 1e9;
  else if (unit == "m") scale = 60e9;
  else if (unit == "h") scale = 3600e9;
  else return std::nullopt;
  const auto value = parse_non_negative(number);
  if (!value || *value * scale > 1e18) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(*value * scale));
}

std::string format_duration(std::uint64_t ns) {
  char text[64];
  if (ns >= 1'000'000'000ULL) std::snprintf(text, sizeof text, "%.3gs", static_cast<double>(ns) / 1e9);
  else if (ns >= 1'000'000ULL) std::snprintf(text, sizeof text, "%.3gms", static_cast<double>(ns) / 1e6);
  else if (ns >= 1'000ULL) std::snprintf(text, sizeof text, "%.3gus", static_cast<double>(ns) / 1e3);
  else std::snprintf(text, sizeof text, "%lluns", static_cast<unsigned long long>(ns));
  return text;
}

bool parse_address(const std::string& text, sockaddr_storage& address) {
  std::string host;
  std::string port_text;
  const bool v6 = text.starts_with('[');
  if (v6) {
    const std::size_t close = text.find("]:");
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  const auto port = parse_uint(port_text);
  if (!port || *port > 65535) return false;
  std::memset(&address, 0, sizeof address);
  const int port_number = static_cast<int>(*port);
  if (v6) return uv_ip6_addr(host.c_str(), port_number, reinterpret_cast<sockaddr_in6*>(&address)) == 0;
  return uv_ip4_addr(host.c_str(), port_number, reinterpret_cast<sockaddr_in*>(&address)) == 0;
}

bool resolve_address(const std::string& text, sockaddr_storage& address, std::string& error) {
  if (parse_address(text, address)) return true;
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || text.starts_with('[')) {
    error = "want HOST:PORT";
    return false;
  }
  const std::string host = text.substr(0, colon);
  const auto port = parse_uint(text.substr(colon + 1));
  if (!port || *port > 65535) {
    error = "bad port";
    return false;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(*port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    error = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return false;
  }
  std::memset(&address, 0, sizeof address);
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return true;
}

std::string format_address(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    uv_ip6_name(&in6, host, sizeof host);
    return std::string("[").append(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
  }
  const auto& in4 = reinterpret_cast<const sockaddr_in&>(address);
  uv_ip4_name(&in4, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(in4.sin_port));
}

bool take_value(int argc, char** argv, int& i, std::string& flag, std::string& value) {
  flag = argv[i];
  value.clear();
  const std::size_t equals = flag.find('=');
  if (equals != std::string::npos) {
    value = flag.substr(equals + 1);
    flag.resize(equals);
    return true;
  }
  if (i + 1 < argc) {
    value = argv[++i];
    return true;
  }
  return false;
}

}  // namespace sluice::tools
