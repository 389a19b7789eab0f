#include "cli.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sluice/net/sockaddr_text.hpp"

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

bool resolve_address(const std::string& text, sockaddr_storage& address, std::string& error) {
  const auto endpoint = parse_endpoint(text, &error);
  if (!endpoint) return false;
  if (const auto numeric = numeric_address(*endpoint)) {
    address = *numeric;
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(endpoint->host.c_str(), std::to_string(endpoint->port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    error = "cannot resolve " + endpoint->host + ": " + gai_strerror(rc);
    return false;
  }
  std::memset(&address, 0, sizeof address);
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return true;
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

bool walk_flags(int argc, char** argv, const char* usage, std::initializer_list<std::string_view> switches,
                const std::function<void(const std::string& flag, const std::string& value)>& on_flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view raw = argv[i];
    if (raw == "--help" || raw == "-h") {
      std::fputs(usage, stdout);
      return true;
    }
    if (std::find(switches.begin(), switches.end(), raw) != switches.end()) {
      on_flag(std::string(raw), std::string());
      continue;
    }
    std::string flag;
    std::string value;
    if (!take_value(argc, argv, i, flag, value)) throw FlagError(flag + " needs a value");
    on_flag(flag, value);
  }
  return false;
}

}  // namespace sluice::tools
