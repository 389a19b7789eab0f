#pragma once
// Durations in configuration: a non-negative integer with a unit, e.g. "250ms", "2s", "1m", "1h".

#include <chrono>
#include <optional>
#include <string_view>

namespace sluice {

using Millis = std::chrono::milliseconds;

/// Parses "<digits><unit>" with unit one of ms, s, m, h. Returns nullopt on anything else
/// (no unit, negative, fractional, overflow).
std::optional<Millis> parse_duration(std::string_view text);

}  // namespace sluice
