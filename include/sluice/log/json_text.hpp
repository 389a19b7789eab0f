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

/// The escapes JSON strings and the log line's quoted values (log_event.hpp) share: a backslash
/// and '"', '\\', 'n', 'r' or 't' for those bytes, `hex_prefix` ("\u00" or "\x") and two hex
/// digits for another control byte or DEL. False (nothing appended) for any other byte.
bool append_escaped_byte(std::string& out, unsigned char c, std::string_view hex_prefix);

/// `text` as the inside of a JSON string (append_json_string without the quotes).
std::string json_escape(std::string_view text);

/// Whether `text` is a number in JSON's grammar (-?int frac? exp?), to be written as it is.
bool is_json_number(std::string_view text);

}  // namespace sluice
