#pragma once
// Small text helpers of the field checks (framing_fields, host_field).

#include <string>
#include <string_view>

namespace sluice::http {

/// Without the optional whitespace (SP, HTAB) around a field value or a list element.
inline std::string_view trim_ows(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

/// A value as an error message quotes it: in single quotes, at most its first 64 characters.
inline std::string quoted_excerpt(std::string_view text) { return "'" + std::string(text.substr(0, 64)) + "'"; }

}  // namespace sluice::http
