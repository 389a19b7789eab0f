#pragma once
// One incremental HTTP/1.x parser (llhttp underneath) for requests and responses: the admin
// server, the tools and the tests all read HTTP through it, and the request-level HTTP mode will
// forward with it on the data path. So it never buffers a body: the handler gets each body span as
// it arrives (chunked framing already removed), and feed() says how many input bytes it consumed,
// so a caller applying backpressure simply feeds less. It stops after every message (pipelined
// requests wait until the caller feeds again) and, when the handler asks, right after a head.
//
//   struct Reader : http::Handler { ... };
//   http::Parser parser(http::Kind::request, reader);
//   auto fed = parser.feed(bytes);           // fed.consumed bytes used; fed.stop says why it stopped
//   ... feed(bytes.substr(fed.consumed)) continues after a message_end or a pause
//
// Strict, so that Sluice and the peer behind it never disagree about where a message ends (request
// smuggling, RFC 9112 11.2): llhttp is built with LLHTTP_STRICT_MODE and no lenient flag, and on top
// of it HeadLines (head_lines.hpp: bare CR or LF, obs-fold, control characters, HTTP/0.9 request
// lines) and FramingFields (framing_fields.hpp: Content-Length, Transfer-Encoding, versions) refuse
// what llhttp would let through. The same rules hold for requests and responses (a response may end
// its codings without chunked: its body runs until the close), and for trailers, which also count
// against the head limits. Every refusal is ErrorKind::malformed with a reason, except a head or
// trailer section over Limits, which is ErrorKind::head_too_large.
//
// Known llhttp 8.1.0 (Debian 12) limits, both refused as malformed though valid: a chunk size line
// with two extensions after an unquoted value ("5;a=b;c=d"; one extension, or quoted values, pass),
// and a quoted-pair in a quoted chunk extension value (5;a="x\"y"). Chunk extensions are also
// refused when a value is empty (5;a=) or a chunk's extensions exceed 4096 bytes, and chunk sizes
// above 2^63-1.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

enum class Kind { request, response };

/// How the body after a head is delimited.
enum class Framing {
  none,            // no body: a request without Content-Length, HEAD/1xx/204/304 responses, Upgrade
  content_length,  // exactly MessageHead::content_length bytes
  chunked,         // Transfer-Encoding: chunked (the handler sees the data without the framing)
  until_close,     // a response without length: the body ends when the peer closes (finish())
};

/// Header names and tokens such as "close" compare without case.
bool equal_bytes_ignoring_case(std::string_view a, std::string_view b);  // of the same length
inline bool equal_ignoring_case(std::string_view a, std::string_view b) {
  // Inline: most header names differ in length from the one looked for, and no call is made.
  return a.size() == b.size() && equal_bytes_ignoring_case(a, b);
}

struct Header {
  std::string name;
  std::string value;
};

struct MessageHead {
  std::string method;  // requests: "GET"
  std::string target;  // requests: "/metrics?x=1"
  int status = 0;      // responses: 200
  std::string reason;  // responses: the reason phrase as sent ("I'm a teapot"; may be empty)
  int version_major = 1;
  int version_minor = 1;
  std::vector<Header> headers;  // in arrival order, names as sent
  Framing framing = Framing::none;
  std::uint64_t content_length = 0;  // with Framing::content_length
  bool keep_alive = false;  // the connection may carry another message after this one
  bool upgrade = false;     // the bytes after this message are another protocol (101, CONNECT)

  /// The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
  /// Back to a default-constructed head, its strings and list keeping their capacity.
  void clear();
  /// The target without its query string (nor, absolute-form, its scheme and authority).
  std::string_view path() const;
};

/// What the handler wants after a head.
enum class Action { proceed, pause };

/// Receives the parsed pieces, in order: on_head, on_body (zero or more spans), on_message_end.
class Handler {
 public:
  virtual ~Handler() = default;
  /// The head is complete. Action::pause makes feed() return Stop::paused right after it (the body
  /// is not read until the caller feeds again), e.g. to connect a backend first.
  virtual Action on_head(const MessageHead& head) = 0;
  /// Body bytes as they arrive; the span is valid only during the call.
  virtual void on_body(std::string_view) {}
  /// The message is complete; `trailers` are the chunked trailer fields (usually none).
  virtual void on_message_end(const std::vector<Header>& trailers) { (void)trailers; }
};

enum class Stop {
  need_more,    // every byte consumed; the message (or the next one) needs more input
  message_end,  // a message ended at `consumed`; feed the rest to go on with the next one
  paused,       // the handler paused after a head
  upgrade,      // the message asked for another protocol: the bytes from `consumed` on are not HTTP
  error,        // the input is not valid HTTP/1.x (or the head is too large): see error()
};

struct Fed {
  std::size_t consumed = 0;
  Stop stop = Stop::need_more;
};

enum class ErrorKind { none, malformed, head_too_large, incomplete };

struct Error {
  ErrorKind kind = ErrorKind::none;
  // llhttp's name and reason ("HPE_INVALID_METHOD: Invalid method encountered"), or the rule broken
  // ("bare LF: a line ends without CR (line 2 of the head)")
  std::string reason;
};

/// Per head, and again per trailer section; beyond either the message is ErrorKind::head_too_large.
struct Limits {
  std::size_t max_head_bytes = 8192;  // request/status line and headers
  std::size_t max_headers = 100;      // header fields
};

class Parser {
 public:
  Parser(Kind kind, Handler& handler, Limits limits = {});
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  /// Parses from the start of `bytes` until they are used up or a stop (see Stop). After
  /// message_end or paused, call feed() again with the bytes from `consumed` on. After an error or
  /// an upgrade the parser takes no more input.
  Fed feed(std::string_view bytes);

  /// The peer closed. Ends a body delimited by the close (on_message_end, Stop::message_end);
  /// a message cut short is an error (ErrorKind::incomplete); between messages: need_more. After
  /// a message ended here the parser starts afresh: bytes fed next are a new stream (another
  /// connection's).
  Fed finish();

  /// Responses only: the request this response answers was a HEAD, so it has no body whatever its
  /// headers say. Applies to the next head parsed (set it before feeding each response).
  void expect_response_to_head(bool head) { response_to_head_ = head; }

  const Error& error() const { return error_; }
  /// True between messages: nothing of a next message has been read yet.
  bool idle() const;

  struct State;  // llhttp's parser and what it has read of the current message (parser.cpp)

 private:
  Fed fail(ErrorKind kind, std::string reason, std::size_t consumed);

  Handler& handler_;
  Limits limits_;
  Kind kind_;
  bool response_to_head_ = false;
  Error error_;
  std::unique_ptr<State> state_;
};

}  // namespace sluice::http
