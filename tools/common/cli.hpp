// Command-line values shared by the experiment tools. Every parser returns nullopt on a bad value;
// the caller names the flag and the value in its error (FlagError below does the formatting).

#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::tools {

// "250us", "20ms", "1.5s", "2m", "100ns": a non-negative decimal number and a unit; nanoseconds.
std::optional<std::uint64_t> parse_duration_ns(std::string_view text);

// A non-negative decimal integer that fits in 64 bits.
std::optional<std::uint64_t> parse_uint(std::string_view text);

// A finite, non-negative decimal number ("120", "0.5", "1e3").
std::optional<double> parse_non_negative(std::string_view text);

// Addresses are read and written with the daemon's helper (sluice/net/sockaddr_text.hpp:
// parse_ip_address, sockaddr_to_string).

// "1.2.3.4:80", "[::1]:80", or HOST:PORT with HOST a name resolved now (getaddrinfo, blocking: call
// before the loop runs). On failure returns false and says why in `error`.
bool resolve_address(const std::string& text, sockaddr_storage& address, std::string& error);

// "20ms" style text for a nanosecond count, for messages.
std::string format_duration(std::uint64_t ns);

// A usage error: the tool prints "TOOL: <what>" and exits 2.
struct FlagError : std::runtime_error {
  FlagError(std::string_view flag, std::string_view value, std::string_view want)
      : std::runtime_error(std::string(flag) + ": bad value '" + std::string(value) + "' (want " + std::string(want) +
                           ")") {}
  explicit FlagError(const std::string& message) : std::runtime_error(message) {}
};

// Splits "--flag=value" / "--flag value". Returns false (and leaves `value` empty) for flags without a
// value in argv; `i` is advanced past a separate value.
bool take_value(int argc, char** argv, int& i, std::string& flag, std::string& value);

// Walks argv: "--help" or "-h" prints `usage` and returns true at once; a flag named in `switches`
// takes no value and reaches `on_flag` with an empty one; any other flag takes a value ("--flag
// value" or "--flag=value"), or it is a FlagError. What `on_flag` throws passes through.
bool walk_flags(int argc, char** argv, const char* usage, std::initializer_list<std::string_view> switches,
                const std::function<void(const std::string& flag, const std::string& value)>& on_flag);

}  // namespace sluice::tools
