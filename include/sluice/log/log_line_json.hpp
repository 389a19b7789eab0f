#pragma once
// An application line as JSON members, for `format: json`: the line's text (log_event.hpp's
// grammar, or prose) read back into fields.

#include <string>
#include <string_view>

namespace sluice {

/// Appends `"event":"E","key":value,...` when `text` is a whole structured line (bare values typed:
/// a JSON number as a number, true/false, "-" as null, the rest strings; quoted values strings),
/// else `"event":"W","message":"TEXT"` with W the first word when it is a name (a trailing ':'
/// dropped: "config: reload applied" is event "config"), "message" otherwise. A field named like a
/// common field (time, level, event, message) gets a '_' appended.
void append_line_json_members(std::string& out, std::string_view text);

}  // namespace sluice
