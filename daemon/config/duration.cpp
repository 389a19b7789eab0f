#include "sluice/config/duration.hpp"

#include <charconv>
#include <cstdint>
#include <limits>

namespace sluice {

std::optional<Millis> parse_duration(std::string_view text) {
  // from_chars into an unsigned type takes digits only: no sign, space or fraction, as the grammar
  // wants. Too many digits is result_out_of_range.
  std::uint64_t count = 0;
  const char* end = text.data() + text.size();
  auto [rest, error] = std::from_chars(text.data(), end, count);
  if (error != std::errc{}) {
    return std::nullopt;
  }

  std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  std::uint64_t ms_per_unit = 0;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "m") {
    ms_per_unit = 60 * 1000;
  } else if (unit == "h") {
    ms_per_unit = 60 * 60 * 1000;
  } else {
    return std::nullopt;
  }

  constexpr auto max_ms = static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
  if (count > max_ms / ms_per_unit) {
    return std::nullopt;
  }
  return Millis(static_cast<Millis::rep>(count * ms_per_unit));
}

}  // namespace sluice
