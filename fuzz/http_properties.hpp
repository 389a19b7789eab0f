#pragma once
// What every run of the HTTP request parser must keep, whatever the bytes: shared by the libFuzzer
// target (http_fuzzer.cpp) and the unit test that replays its seeds and regressions.
//
// - each feed() takes no more than it was given and stops for a reason; after an error or an
//   upgrade it takes nothing more; an error has a kind (malformed or head_too_large) and a reason;
// - every head within the limits (Limits::max_headers fields, no CR, LF or NUL in a name or value,
//   a token name, HTTP/1.0 or 1.1), and its framing matches its fields: Content-Length framing has
//   exactly one Content-Length field with that value and a body of that size, chunked framing a
//   Transfer-Encoding and no Content-Length, no framing neither of them (unless an upgrade);
// - the same messages, bodies, trailers and outcome (kind and reason) whether the input comes whole,
//   byte by byte or in pieces of 7, and whether or not the handler pauses after each head.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/http/parser.hpp"

namespace sluice::fuzz {

inline constexpr http::Limits kHttpFuzzLimits{.max_head_bytes = 4096, .max_headers = 32};

// Records everything the parser hands over, as text to compare runs with.
struct HttpTranscript : http::Handler {
  bool pause_heads = false;
  std::vector<http::MessageHead> heads;
  std::vector<std::string> bodies;
  std::string events;  // heads, body bytes, trailers and message ends, in order
  std::size_t ended = 0;
  std::string violation;

  http::Action on_head(const http::MessageHead& head) override {
    heads.push_back(head);
    bodies.emplace_back();
    events += "head " + head.method + " " + head.target + " " + std::to_string(head.version_minor) + " " +
              std::to_string(static_cast<int>(head.framing)) + " " + std::to_string(head.content_length) + "\n";
    for (const http::Header& h : head.headers) events += "  " + h.name + ": " + h.value + "\n";
    return pause_heads ? http::Action::pause : http::Action::proceed;
  }
  void on_body(std::string_view bytes) override {
    if (bodies.empty()) violation = "body bytes before any head";
    else bodies.back() += bytes;
  }
  void on_message_end(const std::vector<http::Header>& trailers) override {
    if (bodies.empty()) violation = "a message end before any head";
    events += "body " + std::to_string(bodies.empty() ? 0 : bodies.back().size()) + "\n";
    if (!bodies.empty()) events += bodies.back() + "\n";
    for (const http::Header& h : trailers) events += "  trailer " + h.name + ": " + h.value + "\n";
    events += "end\n";
    ++ended;
  }
};

struct HttpOutcome {
  std::string events;
  http::Stop last = http::Stop::need_more;
  http::ErrorKind kind = http::ErrorKind::none;
  std::string reason;
  std::size_t consumed = 0;
  std::string violation;  // a broken rule of the feeds themselves
};

inline bool fuzz_is_token(std::string_view text) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  if (text.empty()) return false;
  for (const char c : text) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && kSymbols.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// `text` (with optional whitespace around it) is the decimal number `value`.
inline bool same_number(std::string_view text, std::uint64_t value) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return false;
  text = text.substr(first, text.find_last_not_of(" \t") + 1 - first);
  while (text.size() > 1 && text.front() == '0') text.remove_prefix(1);
  return text == std::to_string(value);
}

// "" when `head` keeps the rules for a head, else which one it breaks.
inline std::string check_head(const http::MessageHead& head, const std::string& body, bool ended) {
  if (head.version_major != 1 || head.version_minor > 1) return "a version other than 1.0 or 1.1";
  if (head.headers.size() > kHttpFuzzLimits.max_headers) return "more headers than the limit";
  std::size_t lengths = 0;
  std::size_t codings = 0;
  std::string length_value;
  for (const http::Header& h : head.headers) {
    if (!fuzz_is_token(h.name)) return "a header name that is not a token";
    if (h.value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) return "CR, LF or NUL in a value";
    if (http::equal_ignoring_case(h.name, "Content-Length")) {
      ++lengths;
      length_value = h.value;
    }
    if (http::equal_ignoring_case(h.name, "Transfer-Encoding")) ++codings;
  }
  if (lengths > 1) return "several Content-Length fields";
  if (lengths == 1 && codings > 0) return "Content-Length with Transfer-Encoding";
  switch (head.framing) {
    case http::Framing::content_length:
      if (lengths != 1 || !same_number(length_value, head.content_length)) return "a length not from its field";
      if (ended && body.size() != head.content_length) return "a body of another size than its Content-Length";
      break;
    case http::Framing::chunked:
      if (codings == 0) return "chunked framing without Transfer-Encoding";
      break;
    case http::Framing::none:
      if (!head.upgrade && (lengths != 0 || codings != 0)) return "no framing despite a framing field";
      break;
    case http::Framing::until_close:
      return "a request read until the close";
  }
  return {};
}

// Feeds `input` as requests in pieces of `piece` bytes, going on after each stop but an error or
// an upgrade.
inline HttpOutcome run_http(std::string_view input, std::size_t piece, bool pause_heads) {
  HttpTranscript transcript;
  transcript.pause_heads = pause_heads;
  http::Parser parser(http::Kind::request, transcript, kHttpFuzzLimits);
  HttpOutcome out;
  bool over = false;
  int zero_stops = 0;
  bool paused = false;  // the last stop was a pause
  // Feeds `rest` until it is used up, a need_more, an error or an upgrade.
  const auto feed_all = [&](std::string_view rest) {
    for (bool first = true; first || !rest.empty(); first = false) {
      const http::Fed fed = parser.feed(rest);
      if (fed.consumed > rest.size()) out.violation = "feed() took more bytes than it was given";
      out.consumed += fed.consumed;
      rest.remove_prefix(std::min(fed.consumed, rest.size()));
      paused = fed.stop == http::Stop::paused;
      if (fed.stop != http::Stop::need_more && !paused) out.last = fed.stop;  // pausing or not: the same
      over = fed.stop == http::Stop::error || fed.stop == http::Stop::upgrade;
      if (over || fed.stop == http::Stop::need_more) return;
      // A stop may take no byte (a message without body ends on the call after its head's
      // pause), but not three in a row: that would be a loop.
      zero_stops = fed.consumed == 0 ? zero_stops + 1 : 0;
      if (zero_stops > 2) {
        out.violation = "three stops in a row without progress";
        over = true;
        return;
      }
    }
  };
  for (std::size_t start = 0; start < input.size() && !over; start += piece) feed_all(input.substr(start, piece));
  // A pause right at the end of the input: the caller goes on with no bytes (a message without
  // body ends then).
  if (!over && paused) feed_all({});
  if (over && parser.feed("GET / HTTP/1.1\r\n\r\n").consumed != 0) out.violation = "input taken after the end";
  out.kind = parser.error().kind;
  out.reason = parser.error().reason;
  if ((out.last == http::Stop::error) != (out.kind != http::ErrorKind::none)) out.violation = "an error stop without an error";
  if (out.last == http::Stop::error && (out.reason.empty() || out.kind == http::ErrorKind::incomplete)) {
    out.violation = "an error without a reason or of the wrong kind";
  }
  if (!over && out.consumed != input.size()) out.violation = "bytes left although the parser went on";
  if (!transcript.violation.empty()) out.violation = transcript.violation;
  for (std::size_t i = 0; i < transcript.heads.size() && out.violation.empty(); ++i) {
    out.violation = check_head(transcript.heads[i], transcript.bodies[i], i < transcript.ended);
  }
  out.events = std::move(transcript.events);
  return out;
}

/// "" when `input` keeps every property, else the first one it breaks.
inline std::string check_http_properties(std::string_view input) {
  const HttpOutcome whole = run_http(input, input.size() + 1, false);
  if (!whole.violation.empty()) return whole.violation;
  for (const auto& [piece, pause] : {std::pair<std::size_t, bool>{1, false}, {7, true}, {input.size() + 1, true}}) {
    const HttpOutcome split = run_http(input, piece, pause);
    if (!split.violation.empty()) return split.violation + " (pieces of " + std::to_string(piece) + ")";
    if (split.events != whole.events || split.last != whole.last || split.kind != whole.kind ||
        split.reason != whole.reason) {
      const char* what = split.events != whole.events ? "other messages"
                         : split.last != whole.last   ? "another last stop"
                                                      : "another error";
      return "pieces of " + std::to_string(piece) + (pause ? ", pausing," : "") + " give " + what + " than the whole input (" +
             split.reason + " / " + whole.reason + ")";
    }
  }
  return {};
}

}  // namespace sluice::fuzz
