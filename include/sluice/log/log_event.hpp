#pragma once
// Structured log lines: an event and its fields, written as `event key=value key="v w" ...`.
//
// The text is the line of `format: text` and the one grammar `format: json` reads its fields
// back from (log_line_json.hpp): a value is bare when that reads back as the same thing, quoted
// and escaped otherwise, so a name with spaces, quotes, '=' or any byte cannot split a field, and
// a string that looks like a number stays a string. Lines of prose (spdlog::info("config: ...")
// and the like) are written as they are; their format strings must not read as structured lines
// (tests/unit/log_event_test.cpp checks every one under daemon/).

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <spdlog/common.h>

namespace sluice {

/// One field's value: a string, an integer, a number, a boolean, or null ("-": a step never taken).
class LogValue {
 public:
  enum class Kind { string, signed_integer, unsigned_integer, number, boolean, null };

  LogValue(std::string_view text) : kind_(Kind::string), text_(text) {}
  LogValue(const std::string& text) : kind_(Kind::string), text_(text) {}
  LogValue(const char* text) : kind_(Kind::string), text_(text) {}
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  LogValue(T number) {
    if constexpr (std::is_signed_v<T>) {
      kind_ = Kind::signed_integer;
      signed_ = number;
    } else {
      kind_ = Kind::unsigned_integer;
      unsigned_ = number;
    }
  }
  LogValue(double number) : kind_(Kind::number), number_(number) {}
  LogValue(bool flag) : kind_(Kind::boolean), flag_(flag) {}
  LogValue(std::nullptr_t) : kind_(Kind::null) {}
  /// `text`, or null when it is empty (a name that is not set).
  static LogValue text_or_null(std::string_view text) { return text.empty() ? LogValue(nullptr) : LogValue(text); }

  /// Appends the value as the text grammar writes it.
  void append_text(std::string& out) const;

 private:
  Kind kind_ = Kind::null;
  std::string_view text_;
  std::int64_t signed_ = 0;
  std::uint64_t unsigned_ = 0;
  double number_ = 0;
  bool flag_ = false;
};

struct LogField {
  std::string_view key;  // [a-z0-9_]+, not time, level, event or message (the common fields)
  LogValue value;
};

/// `event key=value ...`: the line's text.
std::string event_text(std::string_view event, std::initializer_list<LogField> fields);

/// The value of field `key` in the structured line `text` as written (bare, or quoted with its
/// quotes), empty when the line has no such field. Quoted values are skipped whole, so a name
/// holding " backend=" is never taken for a field.
std::string_view find_field(std::string_view text, std::string_view key);

/// Logs `event` with its fields at `level` (through the default logger, so repeated warnings are
/// limited as for any line); nothing is rendered when the level is off.
void log_event(spdlog::level::level_enum level, std::string_view event, std::initializer_list<LogField> fields);

}  // namespace sluice
