#include "sluice/http/framing_fields.hpp"
#include "sluice/http/field_text.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

namespace sluice::http {

namespace {

// RFC 9110 5.6.2: token = 1*tchar; looked up in a table, as every header name is checked.
struct TokenChars {
  std::array<bool, 256> tchar{};
  constexpr TokenChars() {
    for (int c = 0; c < 256; ++c) {
      tchar[static_cast<std::size_t>(c)] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    for (const char c : std::string_view("!#$%&'*+-.^_`|~")) tchar[static_cast<unsigned char>(c)] = true;
  }
};
constexpr TokenChars kToken;

bool is_token(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return kToken.tchar[static_cast<unsigned char>(c)]; });
}



// 1*DIGIT up to 2^63-1: a larger length is no real body, and a reader keeping it in a signed
// 64-bit count (off_t, ssize_t) would wrap.
std::string check_content_length(std::string_view value) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "Content-Length " + quoted_excerpt(value) + " is not a decimal number";
  }
  std::uint64_t length = 0;
  for (const char c : value) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (length > (kMax - digit) / 10) return "Content-Length " + quoted_excerpt(value) + " is above 2^63-1";
    length = length * 10 + digit;
  }
  return {};
}

}  // namespace

std::string check_version(int major, int minor) {
  if (major == 1 && minor <= 1) return {};
  return "HTTP/" + std::to_string(major) + "." + std::to_string(minor) + " is not HTTP/1.0 or HTTP/1.1";
}

void FramingFields::start(Section section) { *this = FramingFields(section); }

std::string FramingFields::add(std::string_view name, std::string_view value) {
  if (name.empty()) return "a header field without a name";
  if (!is_token(name)) return "header field name " + quoted_excerpt(name) + " is not a token";
  const bool length = equal_ignoring_case(name, "Content-Length");
  const bool coding = equal_ignoring_case(name, "Transfer-Encoding");
  if (!length && !coding) return {};
  if (section_ == Section::trailers) return std::string(name) + " in the trailer section";
  if (length) {
    if (content_length_) return "several Content-Length fields (even identical ones are refused)";
    content_length_ = true;
  } else {
    transfer_encoding_ = true;
  }
  if (content_length_ && transfer_encoding_) return "both Content-Length and Transfer-Encoding";
  return length ? check_content_length(trim_ows(value)) : add_transfer_encoding(value);
}

// Several Transfer-Encoding fields make one list, in order (RFC 9110 5.3).
std::string FramingFields::add_transfer_encoding(std::string_view value) {
  for (;;) {
    const auto comma = value.find(',');
    const std::string_view coding = trim_ows(value.substr(0, comma));
    if (coding.empty()) return "an empty element in Transfer-Encoding";
    if (!is_token(coding)) return "transfer coding " + quoted_excerpt(coding) + " is not a bare token";
    if (chunked_) return "transfer coding " + quoted_excerpt(coding) + " after chunked";
    chunked_ = equal_ignoring_case(coding, "chunked");
    if (comma == std::string_view::npos) return {};
    value.remove_prefix(comma + 1);
  }
}

std::string FramingFields::finish(const MessageHead& head, bool llhttp_chunked) const {
  if (std::string why = check_version(head.version_major, head.version_minor); !why.empty()) return why;
  const bool request = section_ == Section::request_head;
  if (!request && (head.status < 100 || head.status > 999)) {
    return "status " + std::to_string(head.status) + " is not three digits";
  }
  if (!transfer_encoding_) return llhttp_chunked ? "llhttp read chunked framing that is not there" : "";
  // RFC 9112 6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
  if (head.version_minor == 0) return "Transfer-Encoding in an HTTP/1.0 message";
  // A response may end a coding list without chunked (its body runs until the close); a request's
  // length would be unknowable (RFC 9112 6.3).
  if (request && !chunked_) return "the last transfer coding of a request is not chunked";
  if (chunked_ != llhttp_chunked) return "llhttp read Transfer-Encoding differently";
  return {};
}

}  // namespace sluice::http
