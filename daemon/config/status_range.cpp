#include "sluice/config/status_range.hpp"

#include <charconv>

namespace sluice {

namespace {

// One status code: exactly three digits, 100..599 (what an HTTP/1.1 status line can carry).
std::optional<int> status_code(std::string_view text) {
  int code = 0;
  const char* end = text.data() + text.size();
  auto [rest, error] = std::from_chars(text.data(), end, code);
  if (error != std::errc{} || rest != end || text.size() != 3 || code < 100 || code > 599) return std::nullopt;
  return code;
}

}  // namespace

std::string StatusRange::to_string() const {
  return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

std::optional<StatusRange> parse_status_range(std::string_view text, std::string* why) {
  auto fail = [why](std::string message) -> std::optional<StatusRange> {
    if (why != nullptr) *why = std::move(message);
    return std::nullopt;
  };
  const auto dash = text.find('-');
  const std::string_view low = text.substr(0, dash);
  const std::string_view high = dash == std::string_view::npos ? low : text.substr(dash + 1);
  const auto first = status_code(low);
  const auto last = status_code(high);
  if (!first || !last) {
    return fail("expected a status code 100..599 or a range such as 200-399, got '" + std::string(text) + "'");
  }
  if (*first > *last) {
    return fail("range '" + std::string(text) + "' is empty: " + std::to_string(*first) + " is above " +
                std::to_string(*last));
  }
  return StatusRange{*first, *last};
}

}  // namespace sluice
