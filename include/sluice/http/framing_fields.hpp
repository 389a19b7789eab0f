#pragma once
// The fields that decide where a message ends (Content-Length, Transfer-Encoding), the field names
// and the version, checked by sluice::http::Parser as llhttp hands them over, before the handler
// sees a head. llhttp checks most of this too; these rules hold whatever llhttp lets through (it
// reads "Transfer-Encoding: ,chunked" as chunked, takes an empty field name, HTTP/0.9 and 2.0
// versions, and a Content-Length up to 2^64-1), and at the end of a head the framing llhttp chose
// must be the one these rules read, or the message is refused.
//
// Refused (RFC 9112 6 and 11.2): a second Content-Length, even with the same value (HAProxy merges
// identical ones; llhttp strict refuses them and RFC 9112 6.3 allows either), a Content-Length
// that is not 1*DIGIT up to 2^63-1, Content-Length with Transfer-Encoding, a transfer coding that
// is not a bare token (parameters, quotes, empty list elements), any coding after chunked, a
// request whose last coding is not chunked, Transfer-Encoding in HTTP/1.0, either field in trailers.

#include <string>
#include <string_view>

#include "sluice/http/head_lines.hpp"
#include "sluice/http/parser.hpp"

namespace sluice::http {

/// "" for HTTP/1.0 and HTTP/1.1, else why not (llhttp also takes 0.9 and 2.0).
std::string check_version(int major, int minor);

class FramingFields {
 public:
  explicit FramingFields(Section section = Section::request_head) : section_(section) {}

  /// A new head or trailer section begins.
  void start(Section section);

  /// One complete field: "" when it may stand, else why not.
  std::string add(std::string_view name, std::string_view value);

  /// The head is complete: "" when its version and framing fields are sound and llhttp read the
  /// same framing (`llhttp_chunked`: llhttp's F_CHUNKED), else why not.
  std::string finish(const MessageHead& head, bool llhttp_chunked) const;

 private:
  std::string add_transfer_encoding(std::string_view value);

  Section section_ = Section::request_head;
  bool content_length_ = false;
  bool transfer_encoding_ = false;
  bool chunked_ = false;  // the last coding so far is chunked (nothing may follow it)
};

}  // namespace sluice::http
