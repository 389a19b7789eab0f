#pragma once
// The line structure of a head (start line and header lines) or of a trailer section, checked
// byte by byte before llhttp reads the bytes. llhttp 8.1.0, even built with LLHTTP_STRICT_MODE,
// takes a bare LF as a line end (after the request line, at the end of a head or of trailers),
// obs-fold (a header line starting with a space or tab, glued to the line before), HTTP/0.9
// request lines ("GET /") and control characters in a status line. Each is a way for two parsers
// on the path to disagree about a message, so sluice::http::Parser refuses them; llhttp still
// parses everything else (this reads no field, only where lines end and what they may hold).

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::http {

/// What a run of header lines is: the start line differs in each kind of head, trailers have none.
enum class Section { request_head, response_head, trailers };

class HeadLines {
 public:
  explicit HeadLines(Section section = Section::request_head) { start(section); }

  /// A new section begins with the next byte.
  void start(Section section);

  struct Scan {
    std::size_t length = 0;  // bytes read: up to the offending byte, to the section's end, or all
    bool ended = false;      // the section's empty line ends exactly at `length`
    std::string problem;     // non-empty: the byte at `length` breaks the rules, and why
  };
  /// Reads on from where the last call stopped; stops at the end of the section.
  Scan scan(std::string_view bytes);

 private:
  std::string problem(std::string_view what) const;

  Section section_ = Section::request_head;
  std::size_t line_ = 0;     // complete lines so far; empty lines before a request line do not count
  std::size_t column_ = 0;   // bytes of the current line so far (its CR excluded)
  std::size_t spaces_ = 0;   // spaces in the request line so far
  bool after_cr_ = false;    // the last byte was a CR: only an LF may follow
};

}  // namespace sluice::http
