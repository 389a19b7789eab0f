#include "sluice/http/parser.hpp"

#include <algorithm>
#include <exception>
#include <utility>

#include <llhttp.h>

namespace sluice::http {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

std::optional<std::string_view> MessageHead::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (equal_ignoring_case(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::string_view MessageHead::path() const {
  const std::string_view whole(target);
  return whole.substr(0, whole.find('?'));
}

// llhttp calls back into this; `parser.data` points here. The callbacks pause llhttp (HPE_PAUSED)
// after each head and each message, so that feed() knows exactly where they ended.
struct Parser::State {
  enum class Pause { none, head, message_end };

  Parser& owner;
  llhttp_t parser{};
  llhttp_settings_t settings{};
  MessageHead head;
  std::vector<Header> trailers;
  std::string field;  // the header field being read (it may come in pieces)
  std::string value;
  bool in_head = true;        // the bytes fed now belong to a head
  bool begun = false;         // a message has started
  std::size_t head_bytes = 0;  // bytes of the current head so far
  Pause pause = Pause::none;
  bool handler_paused = false;
  bool upgraded = false;  // the bytes after the last message are another protocol
  std::exception_ptr thrown;  // a handler's exception, rethrown by feed() (never through llhttp)

  State(Parser& parser_owner, Kind kind) : owner(parser_owner) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = [](llhttp_t* p) { return self(p).message_begin(); };
    settings.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).head.target, at, n); };
    settings.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).field, at, n); };
    settings.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).append(self(p).value, at, n); };
    settings.on_header_value_complete = [](llhttp_t* p) { return self(p).header_complete(); };
    settings.on_headers_complete = [](llhttp_t* p) { return self(p).headers_complete(); };
    settings.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).body(at, n); };
    settings.on_message_complete = [](llhttp_t* p) { return self(p).message_complete(); };
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
    head = MessageHead{};
    trailers.clear();
    return 0;
  }

  static int append(std::string& to, const char* at, std::size_t n) {
    to.append(at, n);
    return 0;
  }

  int header_complete() {
    (in_head ? head.headers : trailers).push_back({std::move(field), std::move(value)});
    field.clear();
    value.clear();
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

  int message_complete() {
    in_head = true;
    begun = false;
    head_bytes = 0;
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
    : handler_(handler), limits_(limits), state_(std::make_unique<State>(*this, kind)) {}

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
  bool after_head = false;
  while (offset < bytes.size() || std::exchange(after_head, false)) {
    std::string_view chunk = bytes.substr(offset);
    // A head is fed no further than the limit, so that a huge one is refused without reading it.
    const bool limiting = s.in_head;
    if (limiting) chunk = chunk.substr(0, limits_.max_head_bytes - s.head_bytes);
    s.pause = State::Pause::none;
    const llhttp_errno_t rc = llhttp_execute(&s.parser, chunk.data(), chunk.size());
    const std::size_t used =
        rc == HPE_OK ? chunk.size() : static_cast<std::size_t>(llhttp_get_error_pos(&s.parser) - chunk.data());
    offset += used;
    if (limiting) s.head_bytes += used;
    if (s.thrown) std::rethrow_exception(std::exchange(s.thrown, nullptr));
    if (rc == HPE_OK) {
      if (limiting && s.in_head && s.head_bytes >= limits_.max_head_bytes) {
        return fail(ErrorKind::head_too_large,
                    "head larger than " + std::to_string(limits_.max_head_bytes) + " bytes", offset);
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
    llhttp_resume(&s.parser);
    if (s.pause == State::Pause::message_end) return {offset, Stop::message_end};
    if (s.handler_paused) return {offset, Stop::paused};
    after_head = true;
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
    llhttp_resume(&s.parser);
    return {0, Stop::message_end};
  }
  if (rc != HPE_OK) {
    return fail(ErrorKind::incomplete, std::string(llhttp_errno_name(rc)) + ": " + llhttp_get_error_reason(&s.parser), 0);
  }
  // llhttp_finish returns OK without a callback only when no message was under way.
  return {0, Stop::need_more};
}

}  // namespace sluice::http
