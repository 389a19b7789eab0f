#pragma once
// The request path of `mode: http` run for real: a client's bytes go through a real HttpSession on
// a libuv loop, over loopback TCP, to a fake backend that answers each forwarded request with a
// valid response. Shared by the libFuzzer target (http_session_fuzzer.cpp) and the unit test that
// replays its seeds and regressions (tests/unit/http_session_fuzz_replay_test.cpp).
//
// Input: byte 0 chooses the backend's answers (request i gets style (byte0 + i) % 6: Content-Length,
// chunked, 204, 304, 100 then 418, close-delimited), byte 1 seeds where the rest, the client's
// bytes, is cut into separate reads. Then the client half-closes. The harness steps the loop one
// non-blocking turn at a time and moves on (next piece, EOF, a backend answer to a request whose
// body will never come) only when nothing moved for a few turns, so no run depends on a clock.
//
// Properties, whatever the bytes:
// - the session ends (the connection closed, the session freed) within kMaxTurns loop turns, and
//   never stalls with nothing left to come; no libuv handle is left behind;
// - the backend receives exactly the requests the client's bytes hold, as the strict parser reads
//   them, in order, never one more (nothing smuggled), each a strict-valid HTTP/1.1 head with a
//   Host, the same method, target and body; after a 101 the rest of the client's bytes verbatim;
// - the client receives, in order, exactly the backend's answers (status, body), then at most one
//   answer of Sluice's own (400 or 431 only where its bytes do not parse), all strict-valid
//   responses, and a request without an answer only after a response that said Connection: close.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "sluice/balancing/service.hpp"
#include "sluice/http/parser.hpp"
#include "sluice/proxy/http_session.hpp"
#include "sluice/uv/handle.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice::fuzz {

inline constexpr int kMaxTurns = 20000;  // loop turns one run may take
inline constexpr int kQuietTurns = 6;     // turns without any movement: the loop is idle
inline constexpr std::uint32_t kSessionMaxHeaderBytes = 4096;

// One HTTP message as a strict parser read it.
struct ParsedMessage {
  http::MessageHead head;
  std::string body;
  bool complete = false;
};

// Collects the messages of one byte stream.
struct MessageLog final : http::Handler {
  std::vector<ParsedMessage> messages;
  http::Action on_head(const http::MessageHead& head) override {
    messages.push_back({head, {}, false});
    return http::Action::proceed;
  }
  void on_body(std::string_view bytes) override { messages.back().body.append(bytes); }
  void on_message_end(const std::vector<http::Header>&) override { messages.back().complete = true; }
};

// What a whole stream of requests holds, as a strict parser reads it.
struct RequestStream {
  std::vector<ParsedMessage> requests;
  http::Stop last = http::Stop::need_more;  // error, upgrade or need_more
  http::ErrorKind error = http::ErrorKind::none;
  std::size_t upgrade_at = 0;  // with Stop::upgrade: where the other protocol's bytes begin
};

inline RequestStream parse_requests(std::string_view bytes, http::Limits limits) {
  MessageLog log;
  http::Parser parser(http::Kind::request, log, limits);
  RequestStream out;
  std::size_t at = 0;
  for (;;) {
    const http::Fed fed = parser.feed(bytes.substr(at));
    at += fed.consumed;
    out.last = fed.stop;
    if (fed.stop == http::Stop::message_end && at < bytes.size()) continue;
    if (fed.stop == http::Stop::message_end) out.last = http::Stop::need_more;
    break;
  }
  out.error = parser.error().kind;
  out.upgrade_at = at;
  out.requests = std::move(log.messages);
  return out;
}

inline int tcp_socket() { return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

// A listening loopback socket on a port the kernel picks; -1 on failure.
inline int listen_loopback(std::uint16_t& port) {
  const int fd = tcp_socket();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, as_sockaddr(&address), length) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, as_sockaddr(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  port = ntohs(address.sin_port);
  return fd;
}

// Reads what is there; false once the peer closed (or reset: `reset` set).
inline bool drain_socket(int fd, std::string& into, bool& moved, bool* reset = nullptr) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      into.append(buffer, static_cast<std::size_t>(n));
      moved = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && reset != nullptr) *reset = true;
    moved = true;
    return false;
  }
}

// The fake backend: each accepted connection's bytes are parsed as requests, each complete one
// answered at once, an upgrade with a 101 (then its bytes are kept raw), and a request whose body
// stops coming answered early when the harness asks.
class FakeBackend {
 public:
  struct Connection {
    int fd = -1;
    std::string in;
    std::size_t parsed = 0;
    std::unique_ptr<MessageLog> log = std::make_unique<MessageLog>();
    std::unique_ptr<http::Parser> parser;
    std::size_t answered = 0;   // requests of `log` answered
    bool tunnel = false;        // after a 101: raw bytes
    std::string tunnel_bytes;
    bool closed = false;
  };

  FakeBackend(std::uint8_t style, std::uint16_t& port) : style_(style) { listen_fd_ = listen_loopback(port); }
  ~FakeBackend() {
    for (Connection& c : connections_) {
      if (!c.closed) ::close(c.fd);
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  bool ok() const { return listen_fd_ >= 0; }

  // Accepts, reads, answers. Returns whether anything moved.
  bool poll(std::string& violation) {
    bool moved = false;
    for (int fd; (fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
      Connection c;
      c.fd = fd;
      c.parser = std::make_unique<http::Parser>(http::Kind::request, *c.log, http::Limits{1 << 20, 1000});
      connections_.push_back(std::move(c));
      moved = true;
    }
    for (Connection& c : connections_) {
      if (c.closed) continue;
      const bool open = drain_socket(c.fd, c.tunnel ? c.tunnel_bytes : c.in, moved);
      if (!c.tunnel) parse(c, violation);
      if (!open) {
        ::close(c.fd);
        c.closed = true;
      }
    }
    return moved;
  }

  // A request whose head came but not all of its body: answered now (a backend giving up on it).
  bool answer_early() {
    for (Connection& c : connections_) {
      if (!c.closed && !c.tunnel && c.answered < c.log->messages.size()) {
        answer(c);
        return true;
      }
    }
    return false;
  }

  // Every request received, in the order received (one request in flight at a time per session).
  std::vector<const ParsedMessage*> received() const {
    std::vector<const ParsedMessage*> out;
    for (const Order& o : order_) out.push_back(&connections_[o.connection].log->messages[o.index]);
    return out;
  }
  const std::vector<std::string>& answers() const { return answer_bodies_; }
  const std::vector<int>& statuses() const { return answer_statuses_; }
  std::string all_received() const {
    std::string out;
    for (const Connection& c : connections_) out += c.in + c.tunnel_bytes + (c.closed ? "<closed>" : "<open>") + "\n";
    return out;
  }
  std::string tunnel_bytes() const {
    std::string out;
    for (const Connection& c : connections_) out += c.tunnel_bytes;
    return out;
  }

 private:
  struct Order {
    std::size_t connection;
    std::size_t index;
  };

  void parse(Connection& c, std::string& violation) {
    const std::size_t before = c.log->messages.size();
    while (c.parsed < c.in.size() && !c.tunnel) {
      const http::Fed fed = c.parser->feed(std::string_view(c.in).substr(c.parsed));
      c.parsed += fed.consumed;
      for (std::size_t i = before; i < c.log->messages.size(); ++i) note(c, i);
      if (fed.stop == http::Stop::error) {
        if (violation.empty()) violation = "the backend received a request that is not strict HTTP/1.1: " + c.parser->error().reason;
        c.in.clear();
        c.parsed = 0;
        return;
      }
      if (fed.stop == http::Stop::upgrade) {
        c.tunnel = true;
        c.tunnel_bytes = c.in.substr(c.parsed);
        answer(c);
        return;
      }
      if (fed.stop == http::Stop::message_end) {
        if (c.answered < c.log->messages.size()) answer(c);
        continue;
      }
      break;
    }
  }

  // Records request `i` of `c` the first time it is seen.
  void note(Connection& c, std::size_t i) {
    for (const Order& o : order_) {
      if (&connections_[o.connection] == &c && o.index == i) return;
    }
    order_.push_back({static_cast<std::size_t>(&c - connections_.data()), i});
  }

  void answer(Connection& c) {
    const ParsedMessage& request = c.log->messages[c.answered++];
    const std::size_t n = answer_bodies_.size();
    const int style = (style_ + static_cast<int>(n)) % 6;
    const bool head = request.head.method == "HEAD";
    std::string body = "r" + std::to_string(n);
    std::string out;
    int status = 200;
    bool close_after = false;
    bool body_follows = true;  // appended after `out` (chunked bodies are framed in place)
    if (request.head.upgrade && style % 2 == 0) {
      status = 101;
      out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " +
            std::string(request.head.header("Upgrade").value_or("x")) + "\r\nConnection: upgrade\r\n\r\n";
      body.clear();
    } else if (style == 0 || (request.head.upgrade && style % 2 == 1)) {
      out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    } else if (style == 1) {
      out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      if (!head) out += std::to_string(body.size()) + "\r\n" + body + "\r\n0\r\n\r\n";
      body_follows = false;
    } else if (style == 2) {
      status = 204;
      out = "HTTP/1.1 204 No Content\r\n\r\n";
      body.clear();
    } else if (style == 3) {
      status = 304;
      out = "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n";
      body.clear();
    } else if (style == 4) {
      status = 418;
      out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 418 I'm a teapot\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n";
    } else {
      out = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
      close_after = true;
    }
    if (head) body.clear();
    if (body_follows) out += body;
    answer_statuses_.push_back(status);
    answer_bodies_.push_back(body);
    const ssize_t sent = ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL);
    // A few hundred bytes into an empty loopback socket: all or a closed peer, never a part.
    if (sent >= 0 && static_cast<std::size_t>(sent) != out.size()) std::abort();
    if (close_after) {
      ::close(c.fd);
      c.closed = true;
    }
  }

  int style_;
  int listen_fd_ = -1;
  std::vector<Connection> connections_;
  std::vector<Order> order_;
  std::vector<std::string> answer_bodies_;
  std::vector<int> answer_statuses_;
};

// Where the client's bytes are cut: pieces of 1..64 bytes from a xorshift seeded by `seed`.
inline std::vector<std::string_view> split_input(std::string_view bytes, std::uint8_t seed) {
  std::vector<std::string_view> pieces;
  std::uint32_t x = 0x9e3779b9u ^ (static_cast<std::uint32_t>(seed) * 0x01000193u);
  const std::size_t step = seed % 4 == 0 ? bytes.size() : 0;  // a quarter of the seeds: one read
  while (!bytes.empty()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const std::size_t n = step != 0 ? step : 1 + x % (seed % 4 == 1 ? 8 : 64);
    pieces.push_back(bytes.substr(0, n));
    bytes.remove_prefix(std::min(n, bytes.size()));
  }
  return pieces;
}

inline std::string check_responses(const RequestStream& sent, const FakeBackend& backend, const std::string& got,
                                   bool reset);

/// What one run moved, for a look at a finding.
struct SessionTrace {
  std::string client_received;
  std::string backend_received;  // every backend connection's bytes, one after the other
};

/// "" when the run keeps every property, else the first one it breaks. `trace`, when given, gets
/// the bytes each side received. `pipeline_depth`: the listener's http.pipeline_depth (the backend
/// has one slot, so requests read ahead wait in Sluice's queue and are answered in order).
inline std::string check_http_session(std::string_view input, SessionTrace* trace = nullptr,
                                      std::uint32_t pipeline_depth = 1) {
  const std::uint8_t style = input.size() > 0 ? static_cast<std::uint8_t>(input[0]) : 0;
  const std::uint8_t seed = input.size() > 1 ? static_cast<std::uint8_t>(input[1]) : 0;
  const std::string_view client_bytes = input.substr(std::min<std::size_t>(2, input.size()));

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return "harness: uv_loop_init failed";
  std::string violation;
  std::string got;  // what the client received
  bool reset = false;
  RequestStream sent;
  {
    std::uint16_t backend_port = 0;
    std::uint16_t front_port = 0;
    FakeBackend backend(style, backend_port);
    const int front = listen_loopback(front_port);
    if (!backend.ok() || front < 0) std::abort();  // the machine, not Sluice

    ServiceConfig service_config;
    service_config.name = "fuzz";
    service_config.retries = 0;
    service_config.health_check.enabled = false;
    service_config.backends.push_back(BackendConfig{"b", Endpoint{"127.0.0.1", backend_port}, "node", 1, 1});
    auto service = std::make_unique<Service>(service_config, uv_hrtime());
    auto resources = std::make_unique<LoopResources>(&loop);
    ListenerConfig listener_config;
    listener_config.name = "fuzz";
    listener_config.mode = ListenerMode::http;
    listener_config.http.max_header_bytes = kSessionMaxHeaderBytes;
    listener_config.http.pipeline_depth = pipeline_depth;
    auto listener = std::make_unique<Listener>(*resources, listener_config, *service);

    // The client: a loopback connection whose accepted end the session takes.
    const int client = tcp_socket();
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(front_port);
    if (client < 0 || (::connect(client, as_sockaddr(&to), sizeof to) != 0 && errno != EINPROGRESS)) std::abort();
    int accepted = -1;
    for (int i = 0; i < 1000 && accepted < 0; ++i) accepted = ::accept4(front, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ::close(front);
    if (accepted < 0) std::abort();
    HttpSession* session = HttpSession::accept(*listener, accepted);
    if (session == nullptr) std::abort();
    session->start();

    const std::vector<std::string_view> pieces = split_input(client_bytes, seed);
    std::size_t next_piece = 0;
    bool client_shut = false;
    bool client_open = true;
    int quiet = kQuietTurns;
    int turns = 0;
    for (; turns < kMaxTurns && violation.empty(); ++turns) {
      bool moved = false;
      if (quiet >= kQuietTurns) {
        if (next_piece < pieces.size()) {
          const std::string_view piece = pieces[next_piece++];
          const ssize_t n = ::send(client, piece.data(), piece.size(), MSG_NOSIGNAL);
          // A closed connection takes no more; otherwise loopback takes 16 KiB at once.
          if (n >= 0 && static_cast<std::size_t>(n) != piece.size()) std::abort();
          moved = true;
        } else if (!client_shut) {
          ::shutdown(client, SHUT_WR);
          client_shut = true;
          moved = true;
        } else if (backend.answer_early()) {
          moved = true;
        } else if (resources->session_count == 0 && !client_open) {
          break;
        } else {
          violation = resources->session_count != 0 ? "the session stalls: everything was sent and nothing moves"
                                                    : "the session ended but the client connection is still open";
          break;
        }
      }
      uv_run(&loop, UV_RUN_NOWAIT);
      moved = backend.poll(violation) || moved;
      if (client_open) client_open = drain_socket(client, got, moved, &reset);
      quiet = moved ? 0 : quiet + 1;
    }
    if (turns >= kMaxTurns && violation.empty()) violation = "the session did not end within " + std::to_string(kMaxTurns) + " loop turns";
    ::close(client);
    if (trace != nullptr) {
      trace->client_received = got;
      trace->backend_received = backend.all_received();
    }

    if (violation.empty()) {
      sent = parse_requests(client_bytes, http::Limits{kSessionMaxHeaderBytes, 100});
      const std::vector<const ParsedMessage*> received = backend.received();
      std::size_t complete_heads = sent.requests.size();
      if (received.size() > complete_heads) {
        violation = "the backend received " + std::to_string(received.size()) + " requests, the client sent " +
                    std::to_string(complete_heads) + " (a smuggled request)";
      }
      for (std::size_t i = 0; i < received.size() && violation.empty(); ++i) {
        const ParsedMessage& in = *received[i];
        const ParsedMessage& out = sent.requests[i];
        const std::string n = "request " + std::to_string(i) + ": ";
        if (in.head.method != out.head.method || in.head.target != out.head.target) {
          violation = n + "the backend got " + in.head.method + " " + in.head.target + " for " + out.head.method + " " + out.head.target;
        } else if (in.head.version_minor != 1) {
          violation = n + "forwarded as HTTP/1." + std::to_string(in.head.version_minor);
        } else if (!in.head.header("Host")) {
          violation = n + "forwarded without Host";
        } else if (in.complete && out.complete && in.body != out.body) {
          violation = n + "the backend got another body (" + std::to_string(in.body.size()) + " bytes for " +
                      std::to_string(out.body.size()) + ")";
        } else if (in.complete && !out.complete && !out.head.upgrade) {
          violation = n + "the backend got a whole request the client never finished";
        } else if (in.head.upgrade != out.head.upgrade) {
          violation = n + "the upgrade was not forwarded as it came";
        }
      }
      if (violation.empty() && !backend.tunnel_bytes().empty()) {
        const std::string_view rest = client_bytes.substr(sent.upgrade_at);
        if (sent.last != http::Stop::upgrade || rest.substr(0, backend.tunnel_bytes().size()) != backend.tunnel_bytes()) {
          violation = "the bytes after a 101 are not the client's bytes after its upgrade request";
        }
      }
      if (violation.empty()) violation = check_responses(sent, backend, got, reset);
    }

    // Ends what is left (idle pooled connections, a session after a violation) and lets libuv
    // hand back every handle before the objects that own them go.
    resources->abort_all_sessions();
    for (int i = 0; i < 100 && (resources->session_count != 0 || resources->backend_pool.idle_count() != 0); ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (violation.empty() && resources->session_count != 0) violation = "the session was not freed after abort";
    listener.reset();
    service.reset();
    resources.reset();
    for (int i = 0; i < 100 && uv_loop_alive(&loop) != 0; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  }
  if (uv_loop_close(&loop) != 0) {
    if (violation.empty()) violation = "a libuv handle was left open after the session ended";
    uv_walk(&loop, [](uv_handle_t* handle, void*) { if (!uv_is_closing(handle)) uv_close(handle, nullptr); }, nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  return violation;
}

// The client's responses: the backend's answers in order, then at most one of Sluice's own.
inline std::string check_responses(const RequestStream& sent, const FakeBackend& backend, const std::string& got,
                                   bool reset) {
  MessageLog log;
  http::Parser parser(http::Kind::response, log, http::Limits{1 << 20, 1000});
  std::size_t at = 0;
  std::size_t finals = 0;  // final responses parsed so far: the index of the request answered next
  for (;;) {
    const bool head = finals < sent.requests.size() && sent.requests[finals].head.method == "HEAD";
    parser.expect_response_to_head(head);
    const std::size_t before = log.messages.size();
    const http::Fed fed = parser.feed(std::string_view(got).substr(at));
    at += fed.consumed;
    for (std::size_t i = before; i < log.messages.size(); ++i) {
      const int status = log.messages[i].head.status;
      if (status >= 200 || status == 101) ++finals;
    }
    if (fed.stop == http::Stop::error) return "the client got a response that is not strict HTTP: " + parser.error().reason;
    if (fed.stop == http::Stop::upgrade) break;  // the tunnel's bytes follow (none: the backend echoes nothing)
    if (fed.stop != http::Stop::message_end || at == got.size()) break;
  }
  if (!reset && parser.finish().stop == http::Stop::error && !parser.idle()) {
    return "the client got a response cut short without a reset";
  }
  std::vector<const ParsedMessage*> final_responses;
  for (const ParsedMessage& m : log.messages) {
    if (m.head.status >= 200 || m.head.status == 101) final_responses.push_back(&m);
  }
  const std::vector<int>& statuses = backend.statuses();
  const std::vector<std::string>& bodies = backend.answers();
  if (final_responses.size() < statuses.size() && !reset) {
    return "the backend answered " + std::to_string(statuses.size()) + " requests, the client got " +
           std::to_string(final_responses.size()) + " answers";
  }
  for (std::size_t i = 0; i < final_responses.size(); ++i) {
    const ParsedMessage& r = *final_responses[i];
    const std::string n = "response " + std::to_string(i) + ": ";
    if (i < statuses.size()) {
      if (r.head.status != statuses[i]) return n + "status " + std::to_string(r.head.status) + ", the backend sent " + std::to_string(statuses[i]);
      if (r.complete && r.body != bodies[i]) return n + "another body than the backend's";
    } else if (i > statuses.size()) {
      return n + "a second answer of Sluice's own";
    } else {
      // Sluice's own: only where the client's bytes stop parsing as requests.
      const int s = r.head.status;
      const bool malformed = sent.last == http::Stop::error || sent.requests.size() <= i ||
                             (i < sent.requests.size() && !sent.requests[i].complete);
      if ((s == 400 && !malformed) || (s == 431 && sent.error != http::ErrorKind::head_too_large) ||
          (s != 400 && s != 431)) {
        return n + "Sluice answered " + std::to_string(s) + " where the client's bytes hold a valid request";
      }
    }
    const bool says_close = r.head.header("Connection") && http::equal_ignoring_case(*r.head.header("Connection"), "close");
    if (says_close && i + 1 < final_responses.size()) return n + "Connection: close, then another response";
  }
  return {};
}

}  // namespace sluice::fuzz
