#include "sluice/log/log_line_json.hpp"

#include <optional>
#include <vector>

#include "sluice/log/json_text.hpp"

namespace sluice {

namespace {

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

bool is_name(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

bool is_bare_char(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c > ' ' && c != '"' && c != '\\' && c != '=' && c != 0x7f;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

struct Field {
  std::string_view key;
  std::string value;  // unescaped when quoted
  bool quoted = false;
};

// Reads the structured line `text` into its event and fields; nullopt when it is not one.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  std::optional<std::string_view> read(std::vector<Field>& fields) {
    const std::string_view event = name();
    if (event.empty()) return std::nullopt;
    while (at_ < text_.size()) {
      if (text_[at_++] != ' ') return std::nullopt;
      Field field;
      field.key = name();
      if (field.key.empty() || at_ >= text_.size() || text_[at_++] != '=') return std::nullopt;
      if (at_ < text_.size() && text_[at_] == '"') {
        field.quoted = true;
        if (!quoted(field.value)) return std::nullopt;
      } else {
        const std::size_t start = at_;
        while (at_ < text_.size() && is_bare_char(text_[at_])) ++at_;
        if (at_ == start) return std::nullopt;
        field.value = text_.substr(start, at_ - start);
      }
      fields.push_back(std::move(field));
    }
    return event;
  }

 private:
  std::string_view name() {
    const std::size_t start = at_;
    while (at_ < text_.size() && is_name_char(text_[at_])) ++at_;
    return text_.substr(start, at_ - start);
  }

  // A quoted value from its opening quote through its closing one, escapes undone.
  bool quoted(std::string& value) {
    ++at_;
    while (at_ < text_.size()) {
      const char c = text_[at_++];
      if (c == '"') return true;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (at_ >= text_.size()) return false;
      switch (const char escaped = text_[at_++]; escaped) {
        case '"': value += '"'; break;
        case '\\': value += '\\'; break;
        case 'n': value += '\n'; break;
        case 'r': value += '\r'; break;
        case 't': value += '\t'; break;
        case 'x': {
          if (at_ + 2 > text_.size()) return false;
          const int high = hex_digit(text_[at_]), low = hex_digit(text_[at_ + 1]);
          if (high < 0 || low < 0) return false;
          value += static_cast<char>(high * 16 + low);
          at_ += 2;
          break;
        }
        default: return false;
      }
    }
    return false;  // no closing quote
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

bool is_common_field(std::string_view key) {
  return key == "time" || key == "level" || key == "event" || key == "message";
}

void append_value(std::string& out, const Field& field) {
  if (field.quoted) {
    append_json_string(out, field.value);
  } else if (field.value == "-") {
    out += "null";
  } else if (field.value == "true" || field.value == "false" || is_json_number(field.value)) {
    out += field.value;
  } else {
    append_json_string(out, field.value);
  }
}

// The event of a prose line: its first word when that is a name ("config:" counts as "config").
std::string_view prose_event(std::string_view text) {
  std::string_view word = text.substr(0, text.find(' '));
  if (word.ends_with(':')) word.remove_suffix(1);
  return is_name(word) ? word : std::string_view("message");
}

}  // namespace

void append_line_json_members(std::string& out, std::string_view text) {
  std::vector<Field> fields;
  const std::optional<std::string_view> event = LineReader(text).read(fields);
  out += "\"event\":";
  if (!event) {
    append_json_string(out, prose_event(text));
    out += ",\"message\":";
    append_json_string(out, text);
    return;
  }
  append_json_string(out, *event);
  for (const Field& field : fields) {
    out += ',';
    append_json_string(out, is_common_field(field.key) ? std::string(field.key) + "_" : std::string(field.key));
    out += ':';
    append_value(out, field);
  }
}

}  // namespace sluice
