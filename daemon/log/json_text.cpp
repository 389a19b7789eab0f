#include "sluice/log/json_text.hpp"

#include <cstdint>

namespace sluice {

namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// The length of the valid UTF-8 sequence at the start of `text` (2 to 4), or how many of its
// bytes form a valid prefix of one (0 or more, then less than its length) when it is invalid.
struct Utf8Scan {
  std::size_t length = 0;
  bool valid = false;
};
Utf8Scan scan_utf8(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  const std::uint8_t lead = byte(0);
  std::size_t length = 0;
  std::uint8_t low = 0x80, high = 0xbf;  // the range of the second byte (Unicode table 3-7)
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;  // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;  // nothing above U+10FFFF
  } else {
    return {1, false};
  }
  for (std::size_t i = 1; i < length; ++i) {
    const bool in_range = i < text.size() && byte(i) >= (i == 1 ? low : 0x80) && byte(i) <= (i == 1 ? high : 0xbf);
    if (!in_range) return {i, false};
  }
  return {length, true};
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool append_escaped_byte(std::string& out, unsigned char c, std::string_view hex_prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  switch (c) {
    case '"': out += "\\\""; return true;
    case '\\': out += "\\\\"; return true;
    case '\n': out += "\\n"; return true;
    case '\r': out += "\\r"; return true;
    case '\t': out += "\\t"; return true;
    default:
      if (c >= 0x20 && c != 0x7f) return false;
      out += hex_prefix;
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      return true;
  }
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const Utf8Scan scan = scan_utf8(text.substr(i));
      if (scan.valid) {
        out.append(text.substr(i, scan.length));
      } else {
        out.append(kReplacement);
      }
      i += scan.length;
      continue;
    }
    if (!append_escaped_byte(out, c, "\\u00")) out += static_cast<char>(c);
    ++i;
  }
  out += '"';
}

std::string json_escape(std::string_view text) {
  std::string quoted;
  append_json_string(quoted, text);
  return quoted.substr(1, quoted.size() - 2);
}

bool is_json_number(std::string_view text) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    return i > start;
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (i < text.size() && text[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == text.size();
}

}  // namespace sluice
