#include "sluice/http/head_lines.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace sluice::http {

namespace {

// Bytes that need no decision inside a line: neither CR, LF, a control character nor DEL. In a
// request line SP and HTAB need one too (SP is counted, HTAB refused).
struct PlainBytes {
  std::array<bool, 256> field{};
  std::array<bool, 256> request_line{};
  constexpr PlainBytes() {
    for (int c = 0; c < 256; ++c) {
      field[static_cast<std::size_t>(c)] = (c >= 0x20 && c != 0x7f) || c == '\t';
      request_line[static_cast<std::size_t>(c)] = c > 0x20 && c != 0x7f;
    }
  }
};
constexpr PlainBytes kPlain;

// Whether one of the 8 bytes of `word` is below `limit` (at most 0x80) or is DEL (bit tricks,
// exact as a yes or no). Eight plain bytes at a time: most of a head is runs of them.
constexpr std::uint64_t kEachByte = 0x0101010101010101;
constexpr std::uint64_t kHighBits = 0x8080808080808080;
bool needs_a_look(std::uint64_t word, std::uint64_t limit) {
  const std::uint64_t below = (word - kEachByte * limit) & ~word & kHighBits;
  const std::uint64_t del = word ^ (kEachByte * 0x7f);
  return (below | ((del - kEachByte) & ~del & kHighBits)) != 0;
}

}  // namespace

void HeadLines::start(Section section) {
  section_ = section;
  line_ = 0;
  column_ = 0;
  spaces_ = 0;
  after_cr_ = false;
}

std::string HeadLines::problem(std::string_view what) const {
  const char* where = section_ == Section::trailers ? "trailer section" : "head";
  return std::string(what) + " (line " + std::to_string(line_ + 1) + " of the " + where + ")";
}

HeadLines::Scan HeadLines::scan(std::string_view bytes) {
  const bool request = section_ == Section::request_head;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const bool start_line = section_ != Section::trailers && line_ == 0;
    // Inside a line (not at the start of a header line, where SP and HTAB are obs-fold) a run of
    // plain bytes only moves the column on: skipped by table, the rest below byte by byte.
    if (!after_cr_ && (start_line || column_ != 0)) {
      const std::array<bool, 256>& plain = start_line && request ? kPlain.request_line : kPlain.field;
      const std::size_t from = i;
      // SP ends a plain run in a request line; HTAB, plain in a field, is left to the table.
      const std::uint64_t limit = start_line && request ? 0x21 : 0x20;
      for (std::uint64_t word = 0; i + sizeof word <= bytes.size(); i += sizeof word) {
        std::memcpy(&word, bytes.data() + i, sizeof word);
        if (needs_a_look(word, limit)) break;
      }
      while (i < bytes.size() && plain[static_cast<unsigned char>(bytes[i])]) ++i;
      column_ += i - from;
      if (i == bytes.size()) break;
    }
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (after_cr_) {
      if (c != '\n') return {i, false, problem("bare CR: a CR not followed by LF")};
      after_cr_ = false;
      if (column_ == 0) {
        // RFC 9112 2.2: a server should ignore empty lines before a request line (some clients
        // send a CRLF after a body). Anywhere else an empty line ends the section.
        if (start_line && request) continue;
        return {i + 1, true, {}};
      }
      if (start_line && request && spaces_ != 2) {
        return {i, false, problem("the request line is not METHOD SP TARGET SP HTTP-VERSION (HTTP/0.9?)")};
      }
      ++line_;
      column_ = 0;
      continue;
    }
    if (c == '\r') {
      after_cr_ = true;
      continue;
    }
    if (c == '\n') return {i, false, problem("bare LF: a line ends without CR")};
    if (!start_line && column_ == 0 && (c == ' ' || c == '\t')) {
      return {i, false, problem("a header line starts with whitespace (obs-fold, or a space before the name)")};
    }
    // HTAB is allowed in field values and a reason phrase, not in a request line.
    if ((c < 0x20 && !(c == '\t' && !(start_line && request))) || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return {i, false, problem(std::string("control character ") + hex)};
    }
    if (start_line && request && c == ' ' && ++spaces_ > 2) {
      return {i, false, problem("more than two spaces in the request line")};
    }
    ++column_;
  }
  return {bytes.size(), false, {}};
}

}  // namespace sluice::http
