#include "sluice/http/parser.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <utility>

#include <llhttp.h>

#include "sluice/http/framing_fields.hpp"
#include "sluice/http/head_lines.hpp"
#include "sluice/http/host_field.hpp"

namespace sluice::http {

bool equal_bytes_ignoring_case(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i] && lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> MessageHead::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (equal_ignoring_case(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

void MessageHead::clear() {
  method.clear();
  target.clear();
  status = 0;
  reason.clear();
  version_major = version_minor = 1;
  headers.clear();
  framing = Framing::none;
  content_length = 0;
  keep_alive = upgrade = false;
}

std::string_view MessageHead::path() const {
  std::string_view whole(target);
  // An absolute-form target ("http://a/p?q", RFC 9112 3.2.2) has its path after the authority.
  if (const std::string_view authority = target_authority(whole); !authority.empty()) {
    whole.remove_prefix(static_cast<std::size_t>(authority.data() + authority.size() - whole.data()));
    if (whole.empty() || whole.front() != '/') return "/";
  }
  return whole.substr(0, whole.find('?'));
}

namespace {
constexpr std::size_t kMaxChunkExtensionBytes = 4096;  // per chunk: a longer one is no real use
constexpr std::uint64_t kMaxChunkSize = std::numeric_limits<std::int64_t>::max();
// Fields whose strings a parser keeps for the next message, and their largest size.
constexpr std::size_t kMaxSpareFields = 32;
constexpr std::size_t kMaxSpareBytes = 256;
}  // namespace

// llhttp calls back into this; `parser.data` points here. The callbacks pause llhttp (HPE_PAUSED)
// after each head, at the start of the trailers and after each message, so that feed() knows
// exactly where they are: head and trailer bytes go through HeadLines and the limits first.
struct Parser::State {
  enum class Pause { none, head, trailers, message_end };

  Parser& owner;
  llhttp_t parser{};
  llhttp_settings_t settings{};
  MessageHead head;
  std::vector<Header> trailers;
  std::string field;  // the header field being read (it may come in pieces); keeps its capacity
  std::string value;
  std::vector<Header> spare;  // the last message's fields, their strings reused by the next one
  Section head_section;
  HeadLines lines;
  FramingFields fields;
  bool in_head = true;        // the bytes fed now belong to a head
  bool in_trailers = false;   // ... or to a trailer section
  bool begun = false;         // a message has started
  std::size_t head_bytes = 0;  // bytes of the current head (or trailer section) so far
  std::size_t extension_bytes = 0;  // chunk extensions of the current chunk so far
  std::size_t value_bytes = 0;      // the current chunk extension's value so far
  std::optional<Error> refusal;     // a rule a callback found broken: feed() fails with it
  Pause pause = Pause::none;
  bool handler_paused = false;
  bool resume_after_pause = false;  // the next feed() goes on after the head even without bytes
  bool upgraded = false;  // the bytes after the last message are another protocol
  std::exception_ptr thrown;  // a handler's exception, rethrown by feed() (never through llhttp)

  State(Parser& parser_owner, Kind kind)
      : owner(parser_owner),
        head_section(kind == Kind::request ? Section::request_head : Section::response_head),
        lines(head_section),
        fields(head_section) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = [](llhttp_t* p) { return self(p).message_begin(); };
    settings.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).head.target, at, n); };
    settings.on_status = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).head.reason, at, n); };
    settings.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).field, at, n); };
    settings.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).value, at, n); };
    settings.on_header_value_complete = [](llhttp_t* p) { return self(p).header_complete(); };
    settings.on_headers_complete = [](llhttp_t* p) { return self(p).headers_complete(); };
    settings.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).body(at, n); };
    settings.on_message_complete = [](llhttp_t* p) { return self(p).message_complete(); };
    settings.on_version_complete = [](llhttp_t* p) { return self(p).version_complete(); };
    settings.on_chunk_header = [](llhttp_t* p) { return self(p).chunk_header(); };
    settings.on_chunk_extension_name = [](llhttp_t* p, const char*, std::size_t n) { return self(p).extension(n, false); };
    settings.on_chunk_extension_value = [](llhttp_t* p, const char*, std::size_t n) { return self(p).extension(n, true); };
    settings.on_chunk_extension_value_complete = [](llhttp_t* p) { return self(p).extension_value_complete(); };
    llhttp_init(&parser, kind == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    parser.data = this;
  }

  static State& self(llhttp_t* p) { return *static_cast<State*>(p->data); }

  // Runs a handler call; an exception is kept for feed() and stops llhttp with an error.
  template <class Call>
  int guarded(Call call) {
    try {
      return call();
    } catch (...) {
      thrown = std::current_exception();
      return -1;
    }
  }

  int message_begin() {
    begun = true;
    recycle(head.headers);
    recycle(trailers);
    head.clear();
    return 0;
  }

  // The fields of the last message give their strings (and their capacity) to the next one's.
  // Bounded, so that a connection keeps little of an unusually large head.
  void recycle(std::vector<Header>& list) {
    for (Header& h : list) {
      if (spare.size() < kMaxSpareFields && h.name.capacity() <= kMaxSpareBytes && h.value.capacity() <= kMaxSpareBytes) {
        spare.push_back(std::move(h));
      }
    }
    list.clear();
  }

  static int append(std::string& to, const char* at, std::size_t n) {
    to.append(at, n);
    return 0;
  }

  // Stops llhttp with an error; feed() reports `why`.
  int refuse(ErrorKind kind, std::string why) {
    refusal = Error{kind, std::move(why)};
    return -1;
  }

  // Refused as soon as it is read, not at the end of the head.
  int version_complete() {
    std::string why = check_version(parser.http_major, parser.http_minor);
    return why.empty() ? 0 : refuse(ErrorKind::malformed, std::move(why));
  }

  int header_complete() {
    std::vector<Header>& list = in_head ? head.headers : trailers;
    if (list.size() >= owner.limits_.max_headers) {
      return refuse(ErrorKind::head_too_large, "more than " + std::to_string(owner.limits_.max_headers) +
                                                   (in_head ? " header fields" : " trailer fields"));
    }
    if (std::string why = fields.add(field, value); !why.empty()) return refuse(ErrorKind::malformed, std::move(why));
    if (spare.empty()) {
      list.push_back({field, value});
    } else {
      list.push_back(std::move(spare.back()));
      spare.pop_back();
      list.back().name.assign(field);  // not swapped: a swap of short strings costs more
      list.back().value.assign(value);
    }
    field.clear();
    value.clear();
    if (value.capacity() > kMaxSpareBytes) value.shrink_to_fit();
    if (field.capacity() > kMaxSpareBytes) field.shrink_to_fit();
    return 0;
  }

  int headers_complete() {
    const bool response = parser.type == HTTP_RESPONSE;
    if (response) {
      head.status = parser.status_code;
      // llhttp would read a body a 304 (or 1xx, 204) announces with Content-Length: they have none.
      const bool bodiless_status = head.status / 100 == 1 || head.status == 204 || head.status == 304;
      if (owner.response_to_head_ || bodiless_status) parser.flags |= F_SKIPBODY;
    } else {
      head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
    }
    head.version_major = parser.http_major;
    head.version_minor = parser.http_minor;
    head.upgrade = parser.upgrade != 0;
    head.keep_alive = llhttp_should_keep_alive(&parser) != 0;
    if (std::string why = fields.finish(head, (parser.flags & F_CHUNKED) != 0); !why.empty()) {
      return refuse(ErrorKind::malformed, std::move(why));
    }
    if (std::string why = response ? std::string() : check_host(head); !why.empty()) {
      return refuse(ErrorKind::malformed, std::move(why));
    }
    if (head.upgrade || (parser.flags & F_SKIPBODY) != 0) {
      head.framing = Framing::none;
    } else if ((parser.flags & F_CHUNKED) != 0) {
      head.framing = Framing::chunked;
    } else if ((parser.flags & F_CONTENT_LENGTH) != 0) {
      head.framing = Framing::content_length;
      head.content_length = parser.content_length;
    } else if (response && llhttp_message_needs_eof(&parser) != 0) {
      head.framing = Framing::until_close;
    }
    in_head = false;
    pause = Pause::head;
    return guarded([&] {
      handler_paused = owner.handler_.on_head(head) == Action::pause;
      // Skipping the body must be decided in this call; llhttp reads the flag after the pause.
      return static_cast<int>(HPE_PAUSED);
    });
  }

  int body(const char* at, std::size_t n) {
    if (n == 0) return 0;  // llhttp ends a span at the end of each input, also an empty one
    return guarded([&] {
      owner.handler_.on_body(std::string_view(at, n));
      return 0;
    });
  }

  // The size line of a chunk has been read; after the last (size 0) come the trailers.
  int chunk_header() {
    extension_bytes = 0;
    if (parser.content_length > kMaxChunkSize) return refuse(ErrorKind::malformed, "a chunk size above 2^63-1");
    if (parser.content_length != 0) return 0;
    in_trailers = true;
    head_bytes = 0;
    lines.start(Section::trailers);
    fields.start(Section::trailers);
    pause = Pause::trailers;
    return HPE_PAUSED;
  }

  int extension(std::size_t n, bool is_value) {
    extension_bytes += n;
    if (is_value) value_bytes += n;
    if (extension_bytes > kMaxChunkExtensionBytes) {
      return refuse(ErrorKind::malformed, "chunk extensions longer than " + std::to_string(kMaxChunkExtensionBytes) + " bytes");
    }
    return 0;
  }

  // llhttp takes "5;a=": an '=' must be followed by a token or a quoted string (RFC 9112 7.1.1).
  int extension_value_complete() {
    if (std::exchange(value_bytes, 0) == 0) return refuse(ErrorKind::malformed, "a chunk extension with an empty value");
    return 0;
  }

  int message_complete() {
    in_head = true;
    in_trailers = false;
    begun = false;
    head_bytes = 0;
    lines.start(head_section);
    fields.start(head_section);
    const int rc = guarded([&] {
      owner.handler_.on_message_end(trailers);
      return 0;
    });
    if (rc != 0) return rc;
    // An upgrade ends in HPE_PAUSED_UPGRADE, which llhttp returns itself.
    if (parser.upgrade != 0) return 0;
    pause = Pause::message_end;
    return HPE_PAUSED;
  }
};

Parser::Parser(Kind kind, Handler& handler, Limits limits)
    : handler_(handler), limits_(limits), kind_(kind), state_(std::make_unique<State>(*this, kind)) {}

Parser::~Parser() = default;

bool Parser::idle() const { return !state_->begun && state_->head_bytes == 0; }

Fed Parser::fail(ErrorKind kind, std::string reason, std::size_t consumed) {
  error_ = {kind, std::move(reason)};
  return {consumed, Stop::error};
}

Fed Parser::feed(std::string_view bytes) {
  State& s = *state_;
  if (error_.kind != ErrorKind::none) return {0, Stop::error};
  if (s.upgraded) return {0, Stop::upgrade};
  std::size_t offset = 0;
  // After a head, llhttp goes on (a message without body ends there) only when called again, even
  // with no bytes left.
  // After a pause too: a message without body ends on the next call, which may bring no bytes.
  bool after_head = std::exchange(s.resume_after_pause, false);
  while (offset < bytes.size() || std::exchange(after_head, false)) {
    std::string_view chunk = bytes.substr(offset);
    // A head (or trailer section) is fed no further than the limit, so that a huge one is refused
    // without reading it, and only up to the first byte HeadLines refuses.
    const bool limiting = s.in_head || s.in_trailers;
    HeadLines::Scan lines;
    if (limiting) {
      lines = s.lines.scan(chunk.substr(0, limits_.max_head_bytes - s.head_bytes));
      chunk = chunk.substr(0, lines.length);
    }
    s.pause = State::Pause::none;
    // Never a null pointer (an empty string_view's): llhttp computes data + len.
    const char* const at = chunk.data() != nullptr ? chunk.data() : "";
    const llhttp_errno_t rc = llhttp_execute(&s.parser, at, chunk.size());
    const std::size_t used =
        rc == HPE_OK ? chunk.size() : static_cast<std::size_t>(llhttp_get_error_pos(&s.parser) - at);
    offset += used;
    if (limiting && s.pause != State::Pause::message_end) s.head_bytes += used;  // not once the next head began
    if (s.thrown) std::rethrow_exception(std::exchange(s.thrown, nullptr));
    if (s.refusal) return fail(s.refusal->kind, std::move(s.refusal->reason), offset);
    if (rc == HPE_OK) {
      // llhttp found nothing wrong before the byte HeadLines refuses (an earlier error wins, so
      // the outcome does not depend on how the input was split).
      if (!lines.problem.empty()) return fail(ErrorKind::malformed, std::move(lines.problem), offset);
      if (lines.ended) return fail(ErrorKind::malformed, "llhttp read on past the empty line ending the head", offset);
      if (limiting && s.head_bytes >= limits_.max_head_bytes) {
        return fail(ErrorKind::head_too_large, std::string(s.in_trailers ? "trailer section" : "head") +
                                                   " larger than " + std::to_string(limits_.max_head_bytes) + " bytes",
                    offset);
      }
      continue;
    }
    if (rc == HPE_PAUSED_UPGRADE) {
      s.upgraded = true;
      return {offset, Stop::upgrade};
    }
    if (rc != HPE_PAUSED) {
      return fail(ErrorKind::malformed,
                  std::string(llhttp_errno_name(rc)) + ": " + llhttp_get_error_reason(&s.parser), offset);
    }
    // A head or trailer section ends exactly at the empty line HeadLines saw, or the two disagree.
    if (limiting && s.pause != State::Pause::trailers && (used != chunk.size() || !lines.ended)) {
      return fail(ErrorKind::malformed, "llhttp ended the head before its empty line", offset);
    }
    llhttp_resume(&s.parser);
    switch (s.pause) {
      case State::Pause::message_end:
        return {offset, Stop::message_end};
      case State::Pause::head:
        if (s.handler_paused) {
          s.resume_after_pause = true;
          return {offset, Stop::paused};
        }
        after_head = true;
        break;
      case State::Pause::trailers:
      case State::Pause::none:
        break;
    }
  }
  return {offset, Stop::need_more};
}

Fed Parser::finish() {
  State& s = *state_;
  if (error_.kind != ErrorKind::none) return {0, Stop::error};
  if (!s.begun) return {0, Stop::need_more};
  const llhttp_errno_t rc = llhttp_finish(&s.parser);
  if (s.thrown) std::rethrow_exception(std::exchange(s.thrown, nullptr));
  if (rc == HPE_PAUSED) {
    // llhttp stays in the close-delimited body: bytes fed after this (a new connection's) would
    // be read as more of it. The peer closed, so what comes next is a new stream: start afresh.
    state_ = std::make_unique<State>(*this, kind_);
    return {0, Stop::message_end};
  }
  if (rc != HPE_OK) {
    return fail(ErrorKind::incomplete, std::string(llhttp_errno_name(rc)) + ": " + llhttp_get_error_reason(&s.parser), 0);
  }
  // llhttp_finish returns OK without a callback only when no message was under way.
  return {0, Stop::need_more};
}

}  // namespace sluice::http
