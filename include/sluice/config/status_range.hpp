#pragma once
// HTTP status ranges in configuration: a single code ("200") or an inclusive range ("200-399"),
// each code 100..599. Used by the HTTP health check's `expect`.

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct StatusRange {
  int first = 200;
  int last = 399;

  bool contains(int status) const { return status >= first && status <= last; }
  /// "200" or "200-399", as it is written in the config.
  std::string to_string() const;

  bool operator==(const StatusRange&) const = default;
};

/// Parses "<code>" or "<code>-<code>" (no spaces, the first not above the second). On failure
/// returns nullopt and, when `why` is given, says what is wrong.
std::optional<StatusRange> parse_status_range(std::string_view text, std::string* why = nullptr);

}  // namespace sluice
