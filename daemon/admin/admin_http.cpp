#include "sluice/admin/admin_http.hpp"

#include <cstring>
#include <utility>

#include <pthread.h>

#include <spdlog/spdlog.h>

#include "sluice/control/background_thread.hpp"
#include "sluice/http/response.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

namespace {

constexpr std::size_t kMaxRequestHeadBytes = 8192;  // request line + headers; more gets a 431
constexpr std::size_t kMaxConnections = 64;         // more concurrent ones are closed at once
constexpr std::uint64_t kLingerMs = 1000;           // after a response: wait for the peer's FIN
constexpr std::uint64_t kKeepAliveIdleMs = 60000;   // a kept-alive connection with no request closes
constexpr int kBacklog = 64;

// Logs a libuv failure the admin thread can only survive (the connection or request is lost).
bool uv_ok(int rc, const char* what) {
  if (rc != 0) spdlog::warn("admin: {} failed: {}", what, uv_strerror(rc));
  return rc == 0;
}

}  // namespace

AdminResponse text_response(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

void AdminServer::Http::Connection::expect_request() {
  parser.emplace(http::Kind::request, *this, http::Limits{.max_head_bytes = kMaxRequestHeadBytes});
}

AdminServer::Http::Http(AdminServer& admin) : owner_(admin) {
  int rc = uv_loop_init(&loop_);
  if (rc == 0) rc = uv_tcp_init(&loop_, &server_);
  if (rc == 0) rc = uv_async_init(&loop_, &reply_async_, [](uv_async_t* async) { owner<Http>(async)->on_replies(); });
  if (rc == 0) rc = uv_async_init(&loop_, &stop_async_, [](uv_async_t* async) { owner<Http>(async)->on_stop(); });
  if (rc != 0) throw std::runtime_error(std::string("cannot set up the admin loop: ") + uv_strerror(rc));
  server_.data = reply_async_.data = stop_async_.data = this;
}

AdminServer::Http::~Http() {
  for (uv_handle_t* handle : {as_handle(&server_), as_handle(&reply_async_), as_handle(&stop_async_)}) {
    if (!uv_is_closing(handle)) uv_close(handle, nullptr);
  }
  uv_ok(uv_run(&loop_, UV_RUN_DEFAULT) == 0 ? 0 : UV_EBUSY, "running the admin loop to its end");
  uv_ok(uv_loop_close(&loop_), "closing the admin loop");
}

bool AdminServer::Http::listen(const sockaddr* address, std::string& why) {
  int rc = uv_tcp_bind(&server_, address, 0);
  if (rc == 0) {
    rc = uv_listen(as_stream(&server_), kBacklog,
                   [](uv_stream_t* server, int status) { owner<Http>(server)->on_connection(status); });
  }
  if (rc != 0) why = "cannot listen on " + sockaddr_to_string(address) + ": " + uv_strerror(rc);
  return rc == 0;
}

std::string AdminServer::Http::bound_address() const {
  sockaddr_storage address{};
  int length = sizeof address;
  if (!uv_ok(uv_tcp_getsockname(&server_, as_sockaddr(&address), &length), "getsockname")) return "?";
  return sockaddr_to_string(as_sockaddr(&address));
}

void AdminServer::Http::run() {
  if (const int error = run_as_background_thread(); error != 0) {
    spdlog::warn("admin: the thread runs at the workers' priority: SCHED_BATCH refused ({})", std::strerror(error));
  }
  pthread_setname_np(pthread_self(), "sluice-admin");  // after the policy: the test reads both
  uv_ok(uv_run(&loop_, UV_RUN_DEFAULT) == 0 ? 0 : UV_EBUSY, "running the admin loop");
}

void AdminServer::Http::request_stop() { uv_ok(uv_async_send(&stop_async_), "waking the admin thread to stop"); }

void AdminServer::Http::wake_for_replies() { uv_ok(uv_async_send(&reply_async_), "waking the admin thread"); }

void AdminServer::Http::timer_fired(uv_timer_t* timer) {
  owner<Connection>(timer)->http.on_timeout(owner<Connection>(timer));
}

void AdminServer::Http::on_connection(int status) {
  if (status < 0) return;
  if (!uv_ok(status, "accepting")) return;
  auto* c = new Connection(*this);
  c->expect_request();
  c->tcp.data = c->timer.data = c;
  if (!uv_ok(uv_timer_init(&loop_, &c->timer), "uv_timer_init")) {
    delete c;
    return;
  }
  if (!uv_ok(uv_tcp_init(&loop_, &c->tcp), "uv_tcp_init")) {
    uv_close(as_handle(&c->timer), [](uv_handle_t* handle) { delete owner<Connection>(handle); });
    return;
  }
  connections_.insert(c);
  if (!uv_ok(uv_accept(as_stream(&server_), as_stream(&c->tcp)), "uv_accept") ||
      connections_.size() > kMaxConnections) {
    close(c);
    return;
  }
  uv_ok(uv_timer_start(&c->timer, timer_fired, owner_.render_timeout_ms_, 0), "starting the request timer");
  const int rc = uv_read_start(
      as_stream(&c->tcp),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        Connection* c = owner<Connection>(handle);
        *buf = uv_buf_init(c->read_buffer.data(), c->read_buffer.size());
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        Connection* c = owner<Connection>(stream);
        c->http.on_read(c, nread, buf);
      });
  if (!uv_ok(rc, "uv_read_start")) close(c);
}

void AdminServer::Http::on_read(Connection* c, ssize_t nread, const uv_buf_t* buf) {
  if (nread == UV_EOF) {
    c->peer_closed = true;
    uv_ok(uv_read_stop(as_stream(&c->tcp)), "uv_read_stop");
    // A half-closed client still gets its answer; an incomplete request or a finished
    // exchange is over.
    if (c->state == Connection::State::reading || c->state == Connection::State::lingering ||
        c->state == Connection::State::idle) {
      close(c);
    }
    return;
  }
  if (nread < 0) {
    close(c);
    return;
  }
  if (c->state == Connection::State::idle) {  // the next request starts: it has the request timeout
    c->state = Connection::State::reading;
    uv_ok(uv_timer_start(&c->timer, timer_fired, owner_.render_timeout_ms_, 0), "starting the request timer");
  }
  if (c->state != Connection::State::reading) {  // pipelined or trailing bytes: ignored, and the
    c->keep_alive = false;                       // connection closes after this answer
    return;
  }
  const auto bytes = std::string_view(buf->base, static_cast<std::size_t>(nread));
  const http::Fed fed = c->parser->feed(bytes);
  if (fed.stop == http::Stop::need_more) return;
  if (fed.stop == http::Stop::error) {
    const bool too_large = c->parser->error().kind == http::ErrorKind::head_too_large;
    respond(c, too_large ? text_response(431, "request head too large\n") : text_response(400, "bad request\n"));
    return;
  }
  c->keep_alive = c->request.keep_alive && fed.consumed == bytes.size();
  handle_request(c);  // the request is complete (a body read and dropped)
}

void AdminServer::Http::handle_request(Connection* c) {
  const http::MessageHead& request = c->request;
  // Origin-form, or absolute-form, which a server must accept too (RFC 9112 3.2.2): path() reads both.
  if (!request.path().starts_with('/') || request.version_major != 1) {
    c->keep_alive = false;
    respond(c, text_response(400, "bad request\n"));
    return;
  }
  c->head_only = request.method == "HEAD";
  if (request.method != "GET" && !c->head_only) {
    c->keep_alive = false;  // an error answer closes the connection
    respond(c, text_response(405, "only GET and HEAD\n"), "Allow: GET, HEAD\r\n");
    return;
  }
  if (request.path() == "/healthz") {
    // Answered here, without the control loop: a health probe must not queue behind a scrape.
    const bool draining = owner_.draining_.load(std::memory_order_relaxed);
    if (draining) {
      respond(c, text_response(503, "draining\n"));
      return;
    }
    const std::string problem = owner_.liveness_ ? owner_.liveness_() : std::string();
    respond(c, problem.empty() ? text_response(200, "ok\n") : text_response(503, problem + "\n"));
    return;
  }
  c->state = Connection::State::rendering;
  c->id = next_id_++;
  rendering_.emplace(c->id, c);
  {
    std::lock_guard lock(owner_.mutex_);
    owner_.requests_.push_back({c->id, std::string(request.path())});
  }
  uv_ok(uv_async_send(owner_.render_async_.get()), "waking the control loop");
}

void AdminServer::Http::on_replies() {
  std::vector<Reply> replies;
  {
    std::lock_guard lock(owner_.mutex_);
    replies.swap(owner_.replies_);
  }
  for (Reply& reply : replies) {
    // The connection may have timed out or gone away meanwhile: then the reply is dropped.
    const auto it = rendering_.find(reply.id);
    if (it == rendering_.end()) continue;
    Connection* c = it->second;
    rendering_.erase(it);
    respond(c, std::move(reply.response));
  }
}

void AdminServer::Http::on_timeout(Connection* c) {
  if (c->state == Connection::State::rendering) {
    rendering_.erase(c->id);
    respond(c, text_response(503, "the event loop did not answer in time\n"));
  } else {
    close(c);  // a slow request, a stuck write, or the linger is over
  }
}

void AdminServer::Http::respond(Connection* c, AdminResponse response, std::string_view extra_headers) {
  c->state = Connection::State::writing;
  c->keep_alive = c->keep_alive && !stopping_ && !c->peer_closed;
  const char* connection = !c->keep_alive                   ? "Connection: close\r\n"
                           : c->request.version_minor == 0 ? "Connection: keep-alive\r\n"
                                                           : "";
  c->response_head = http::response_head(response.status, response.content_type, response.body.size(),
                                         connection + std::string(extra_headers));
  c->response_body = c->head_only ? std::string() : std::move(response.body);
  const std::array<uv_buf_t, 2> bufs = {
      uv_buf_init(c->response_head.data(), c->response_head.size()),
      uv_buf_init(c->response_body.data(), c->response_body.size())};
  uv_ok(uv_timer_start(&c->timer, timer_fired, stopping_ ? kLingerMs : owner_.render_timeout_ms_, 0),
        "starting the write timer");
  const int rc = uv_write(&c->write_request, as_stream(&c->tcp), bufs.data(),
                          bufs.size(), [](uv_write_t* request, int status) {
                            Connection* c = owner<Connection>(request->handle);
                            c->http.on_written(c, status);
                          });
  if (!uv_ok(rc, "uv_write")) close(c);
}

void AdminServer::Http::on_written(Connection* c, int status) {
  if (status < 0 || c->peer_closed || stopping_) {
    close(c);
    return;
  }
  if (c->keep_alive) {
    c->state = Connection::State::idle;
    c->keep_alive = c->head_only = false;
    c->response_body.clear();
    c->expect_request();
    if (!uv_ok(uv_timer_start(&c->timer, timer_fired, kKeepAliveIdleMs, 0), "starting the idle timer")) close(c);
    return;
  }
  // Close only after the client's FIN: closing with its unread bytes (headers we did not need)
  // still queued would send a reset, and the client could lose the response.
  c->state = Connection::State::lingering;
  if (!uv_ok(uv_shutdown(&c->shutdown_request, as_stream(&c->tcp), [](uv_shutdown_t*, int) {}), "uv_shutdown") ||
      !uv_ok(uv_timer_start(&c->timer, timer_fired, kLingerMs, 0), "starting the linger timer")) {
    close(c);
  }
}

void AdminServer::Http::close(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  if (c->state == Connection::State::rendering) rendering_.erase(c->id);
  connections_.erase(c);
  auto on_closed = [](uv_handle_t* handle) {
    Connection* c = owner<Connection>(handle);
    if (--c->open_handles == 0) delete c;
  };
  uv_close(as_handle(&c->tcp), on_closed);
  uv_close(as_handle(&c->timer), on_closed);
}

void AdminServer::Http::on_stop() {
  stopping_ = true;
  for (uv_handle_t* handle : {as_handle(&server_), as_handle(&reply_async_), as_handle(&stop_async_)}) {
    uv_close(handle, nullptr);
  }
  const std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) {
    if (c->state == Connection::State::rendering) {
      rendering_.erase(c->id);
      respond(c, text_response(503, "stopping\n"));  // closes once written
    } else if (c->state != Connection::State::writing) {
      close(c);
    }
  }
}

}  // namespace sluice
