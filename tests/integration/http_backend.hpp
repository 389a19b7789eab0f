#pragma once
// An HTTP/1.1 backend run by the test process for the mode: http tests, whose path picks what it
// does (each request read whole with the daemon's parser, keep-alive as the request asks):
//   /echo...        200 with the request's body, framed as the request was (chunked or length)
//   /headers...     200 with the request head as it arrived: "Name: value" lines
//   /continue...    a POST with Expect: 100-continue gets 100 Continue once its head is in, then the
//                   echo of its body as /echo
//   /status/NNN...  that status: 204 and 304 without a body (304 with Content-Length: 12), others
//                   with the body "teapot\n" and the phrase "I'm a teapot" for 418, "Whatever" else
//   /close...       reads the request and closes the connection without an answer (a 502)
//   /silent...      reads the request and never answers (a 504)
//   /flaky...       closes without an answer when it is not the connection's first request (the
//                   race of a pooled connection the backend closed), else 200 "fine\n"
//   /bye...         200 "ok\n" kept alive, then closes the connection (idle, in Sluice's pool)
//   /upgrade...     101 Switching Protocols, then echoes raw bytes until EOF (a WebSocket-like tunnel)
//   anything else   200 "ok\n"
// Also: a reader of one response on a kept-alive connection, read in large pieces (bodies of MiB).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends.hpp"
#include "client.hpp"
#include "daemon_process.hpp"
#include "sluice/http/message.hpp"

namespace sluice::it {

class HttpTestBackend {
 public:
  explicit HttpTestBackend(int family = AF_INET);
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }
  /// Requests whose head was read, on every connection.
  std::uint64_t requests() const { return requests_.load(); }
  /// The heads read so far, oldest first.
  std::vector<sluice::http::MessageHead> heads() const;

 private:
  void serve(ServerConnection& connection);

  std::atomic<std::uint64_t> requests_{0};
  mutable std::mutex mutex_;
  std::vector<sluice::http::MessageHead> heads_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

/// A backend process of the test's (sluice-backend, a FastAPI app) and where it listens.
struct RunningBackend {
  std::unique_ptr<DaemonProcess> process;
  Address address;
};
/// Runs `command`, a server on a loopback port the kernel picks that prints `prefix` (ending in
/// "127.0.0.1:") and the port once it listens. Throws when no such line comes within `timeout`.
RunningBackend start_listening_process(Command command, const std::string& prefix, Millis timeout);

/// A response followed as it arrives: its body bytes (without chunk framing) and whether it ended.
class ResponseProgress final : public sluice::http::Handler {
 public:
  ResponseProgress() : parser_(sluice::http::Kind::response, *this) {}
  /// Parses `bytes`; false when they are not a valid response.
  bool feed(std::string_view bytes);
  std::size_t body_bytes() const { return body_bytes_; }
  bool complete() const { return complete_; }

 private:
  sluice::http::Action on_head(const sluice::http::MessageHead&) override { return sluice::http::Action::proceed; }
  void on_body(std::string_view bytes) override { body_bytes_ += bytes.size(); }
  void on_message_end(const std::vector<sluice::http::Header>&) override { complete_ = true; }
  sluice::http::Parser parser_;
  std::size_t body_bytes_ = 0;
  bool complete_ = false;
};

/// What `client` has to read now, waiting up to `timeout` for a first byte; "" at EOF. Throws on a
/// timeout or an error other than a reset (then `reset` is set, when given).
std::string read_available(Client& client, Millis timeout, bool* reset = nullptr);

/// One response from `client`, read in large pieces and parsed; bytes after it are an error (the
/// tests send one request at a time). Throws on EOF before its end, a timeout or a malformed one.
sluice::http::Message read_http_response(Client& client, Millis timeout = 10s, bool response_to_head = false);

}  // namespace sluice::it
