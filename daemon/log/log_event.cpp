#include "sluice/log/log_event.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "sluice/log/json_text.hpp"

namespace sluice {

namespace {

// Bytes a bare value cannot hold: they would end it, open a quote or escape, or split it.
bool needs_quotes(unsigned char c) { return c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f; }

// A bare word the reader takes for something else than a string: a number, a boolean or null.
bool reads_as_other(std::string_view text) {
  return text == "-" || text == "true" || text == "false" || is_json_number(text);
}

void append_quoted(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    // Other bytes as they are, UTF-8 or not (the JSON writer replaces invalid ones).
    if (!append_escaped_byte(out, static_cast<unsigned char>(c), "\\x")) out += c;
  }
  out += '"';
}

void append_string(std::string& out, std::string_view text) {
  bool bare = !text.empty() && !reads_as_other(text);
  for (const char c : text) bare = bare && !needs_quotes(static_cast<unsigned char>(c));
  if (bare) {
    out += text;
  } else {
    append_quoted(out, text);
  }
}

}  // namespace

void LogValue::append_text(std::string& out) const {
  switch (kind_) {
    case Kind::string: append_string(out, text_); break;
    case Kind::signed_integer: fmt::format_to(std::back_inserter(out), "{}", signed_); break;
    case Kind::unsigned_integer: fmt::format_to(std::back_inserter(out), "{}", unsigned_); break;
    case Kind::number:
      if (std::isfinite(number_)) {
        fmt::format_to(std::back_inserter(out), "{}", number_);
      } else {
        out += '-';  // JSON has no infinity or NaN
      }
      break;
    case Kind::boolean: out += flag_ ? "true" : "false"; break;
    case Kind::null: out += '-'; break;
  }
}

std::string event_text(std::string_view event, std::initializer_list<LogField> fields) {
  std::string text(event);
  for (const LogField& field : fields) {
    text += ' ';
    text += field.key;
    text += '=';
    field.value.append_text(text);
  }
  return text;
}

std::string_view find_field(std::string_view text, std::string_view key) {
  std::size_t at = text.find(' ');  // past the event
  while (at != std::string_view::npos && at < text.size()) {
    const std::size_t key_start = at + 1;
    const std::size_t equals = text.find('=', key_start);
    if (equals == std::string_view::npos) return {};
    std::size_t end = equals + 1;
    if (end < text.size() && text[end] == '"') {
      for (++end; end < text.size() && text[end] != '"'; ++end) {
        if (text[end] == '\\') ++end;
      }
      end = std::min(end + 1, text.size());  // the closing quote
    } else {
      end = std::min(text.find(' ', end), text.size());
    }
    if (text.substr(key_start, equals - key_start) == key) return text.substr(equals + 1, end - equals - 1);
    at = end;
  }
  return {};
}

void log_event(spdlog::level::level_enum level, std::string_view event, std::initializer_list<LogField> fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  const std::string text = event_text(event, fields);
  logger->log(level, spdlog::string_view_t(text.data(), text.size()));
}

}  // namespace sluice
