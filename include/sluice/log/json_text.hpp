#pragma once
// JSON text written by hand for the log lines (one string appended to, no document built): a
// log line is written per request, so it costs what its bytes cost.

#include <string>
#include <string_view>

namespace sluice {

/// Appends `text` as a JSON string, quotes included: '"', '\' and control characters escaped,
/// invalid UTF-8 replaced by U+FFFD (each maximal invalid subsequence by one), so that the line
/// stays valid JSON whatever bytes a name, path or error text holds.
void append_json_string(std::string& out, std::string_view text);

/// `text` as the inside of a JSON string (append_json_string without the quotes).
std::string json_escape(std::string_view text);

/// Whether `text` is a number in JSON's grammar (-?int frac? exp?), to be written as it is.
bool is_json_number(std::string_view text);

}  // namespace sluice
