#include "sluice/admin/admin_server.hpp"

#include <array>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <pthread.h>

#include <spdlog/spdlog.h>

#include "sluice/http/parser.hpp"
#include "sluice/http/response.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

namespace {

constexpr std::size_t kMaxRequestHeadBytes = 8192;  // request line + headers; more gets a 431
constexpr std::size_t kMaxConnections = 64;         // more concurrent ones are closed at once
constexpr std::uint64_t kLingerMs = 1000;           // after a response: wait for the peer's FIN
constexpr int kBacklog = 64;

AdminResponse plain(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

// Logs a libuv failure the admin thread can only survive (the connection or request is lost).
bool uv_ok(int rc, const char* what) {
  if (rc != 0) spdlog::warn("admin: {} failed: {}", what, uv_strerror(rc));
  return rc == 0;
}

}  // namespace

// Everything the admin thread owns. Its handles are used only on that thread, except the two
// async handles that other threads wake it with.
class AdminServer::Http {
 public:
  // Throws when libuv cannot set the loop up (start() reports it).
  explicit Http(AdminServer& admin) : owner_(admin) {
    int rc = uv_loop_init(&loop_);
    if (rc == 0) rc = uv_tcp_init(&loop_, &server_);
    if (rc == 0) rc = uv_async_init(&loop_, &reply_async_, [](uv_async_t* async) { owner<Http>(async)->on_replies(); });
    if (rc == 0) rc = uv_async_init(&loop_, &stop_async_, [](uv_async_t* async) { owner<Http>(async)->on_stop(); });
    if (rc != 0) throw std::runtime_error(std::string("cannot set up the admin loop: ") + uv_strerror(rc));
    server_.data = reply_async_.data = stop_async_.data = this;
  }

  // After run() (or when it never ran) every handle is closed here and the loop ends.
  ~Http() {
    for (uv_handle_t* handle : {as_handle(&server_), as_handle(&reply_async_), as_handle(&stop_async_)}) {
      if (!uv_is_closing(handle)) uv_close(handle, nullptr);
    }
    uv_ok(uv_run(&loop_, UV_RUN_DEFAULT) == 0 ? 0 : UV_EBUSY, "running the admin loop to its end");
    uv_ok(uv_loop_close(&loop_), "closing the admin loop");
  }

  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Before the thread starts.
  bool listen(const sockaddr* address, std::string& why) {
    int rc = uv_tcp_bind(&server_, address, 0);
    if (rc == 0) {
      rc = uv_listen(as_stream(&server_), kBacklog,
                     [](uv_stream_t* server, int status) { owner<Http>(server)->on_connection(status); });
    }
    if (rc != 0) why = "cannot listen on " + sockaddr_to_string(address) + ": " + uv_strerror(rc);
    return rc == 0;
  }

  std::string bound_address() const {
    sockaddr_storage address{};
    int length = sizeof address;
    if (!uv_ok(uv_tcp_getsockname(&server_, as_sockaddr(&address), &length), "getsockname")) return "?";
    return sockaddr_to_string(as_sockaddr(&address));
  }

  // The admin thread's body: returns once on_stop() has closed everything.
  void run() {
    pthread_setname_np(pthread_self(), "sluice-admin");
    uv_ok(uv_run(&loop_, UV_RUN_DEFAULT) == 0 ? 0 : UV_EBUSY, "running the admin loop");
  }

  // Any thread.
  void request_stop() { uv_ok(uv_async_send(&stop_async_), "waking the admin thread to stop"); }
  void wake_for_replies() { uv_ok(uv_async_send(&reply_async_), "waking the admin thread"); }

 private:
  // The request is read by the one HTTP parser; the connection answers once the request is
  // complete (pipelined requests after it are never read). A body is read and dropped, so that a
  // malformed one is a 400 too; the request deadline bounds how long that may take.
  struct Connection : http::Handler {
    enum class State { reading, rendering, writing, lingering };

    explicit Connection(Http& owner) : http(owner) {}
    http::Action on_head(const http::MessageHead& head) override {
      request = head;
      return head.framing == http::Framing::none ? http::Action::pause : http::Action::proceed;
    }
    Http& http;
    http::Parser parser{http::Kind::request, *this, {.max_head_bytes = kMaxRequestHeadBytes}};
    http::MessageHead request;
    uv_tcp_t tcp{};
    uv_timer_t timer{};  // request deadline, then write deadline, then linger
    uv_write_t write_request{};
    uv_shutdown_t shutdown_request{};
    State state = State::reading;
    bool head_only = false;    // HEAD: headers with the GET's Content-Length, no body
    bool peer_closed = false;  // EOF seen: answer, then close without lingering
    bool closing = false;
    int open_handles = 2;       // tcp + timer; deleted in the last close callback
    std::uint64_t id = 0;       // while rendering: the id of the queued request
    std::string response_head;  // status line and headers, alive until written
    std::string response_body;
    std::array<char, 2048> read_buffer{};  // reads land here: no allocation per read
  };

  static void timer_fired(uv_timer_t* timer) {
    owner<Connection>(timer)->http.on_timeout(owner<Connection>(timer));
  }

  void on_connection(int status) {
    if (status < 0) return;
    if (!uv_ok(status, "accepting")) return;
    auto* c = new Connection(*this);
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

  void on_read(Connection* c, ssize_t nread, const uv_buf_t* buf) {
    if (nread == UV_EOF) {
      c->peer_closed = true;
      uv_ok(uv_read_stop(as_stream(&c->tcp)), "uv_read_stop");
      // A half-closed client still gets its answer; an incomplete request or a finished
      // exchange is over.
      if (c->state == Connection::State::reading || c->state == Connection::State::lingering) {
        close(c);
      }
      return;
    }
    if (nread < 0) {
      close(c);
      return;
    }
    if (c->state != Connection::State::reading) return;  // pipelined or trailing bytes: ignored
    const http::Fed fed = c->parser.feed(std::string_view(buf->base, static_cast<std::size_t>(nread)));
    if (fed.stop == http::Stop::need_more) return;
    if (fed.stop == http::Stop::error) {
      const bool too_large = c->parser.error().kind == http::ErrorKind::head_too_large;
      respond(c, too_large ? plain(431, "request head too large\n") : plain(400, "bad request\n"));
      return;
    }
    handle_request(c);  // the head is complete
  }

  void handle_request(Connection* c) {
    const http::MessageHead& request = c->request;
    if (!request.target.starts_with('/') || request.version_major != 1) {
      respond(c, plain(400, "bad request\n"));
      return;
    }
    c->head_only = request.method == "HEAD";
    if (request.method != "GET" && !c->head_only) {
      respond(c, plain(405, "only GET and HEAD\n"), "Allow: GET, HEAD\r\n");
      return;
    }
    if (request.path() == "/healthz") {
      // Answered here, without the control loop: a health probe must not queue behind a scrape.
      const bool draining = owner_.draining_.load(std::memory_order_relaxed);
      if (draining) {
        respond(c, plain(503, "draining\n"));
        return;
      }
      const std::string problem = owner_.liveness_ ? owner_.liveness_() : std::string();
      respond(c, problem.empty() ? plain(200, "ok\n") : plain(503, problem + "\n"));
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

  void on_replies() {
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

  void on_timeout(Connection* c) {
    if (c->state == Connection::State::rendering) {
      rendering_.erase(c->id);
      respond(c, plain(503, "the event loop did not answer in time\n"));
    } else {
      close(c);  // a slow request, a stuck write, or the linger is over
    }
  }

  void respond(Connection* c, AdminResponse response, std::string_view extra_headers = {}) {
    c->state = Connection::State::writing;
    c->response_head = http::response_head(response.status, response.content_type, response.body.size(),
                                           "Connection: close\r\n" + std::string(extra_headers));
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

  void on_written(Connection* c, int status) {
    if (status < 0 || c->peer_closed || stopping_) {
      close(c);
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

  void close(Connection* c) {
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

  void on_stop() {
    stopping_ = true;
    for (uv_handle_t* handle : {as_handle(&server_), as_handle(&reply_async_), as_handle(&stop_async_)}) {
      uv_close(handle, nullptr);
    }
    const std::vector<Connection*> open(connections_.begin(), connections_.end());
    for (Connection* c : open) {
      if (c->state == Connection::State::rendering) {
        rendering_.erase(c->id);
        respond(c, plain(503, "stopping\n"));  // closes once written
      } else if (c->state != Connection::State::writing) {
        close(c);
      }
    }
  }

  AdminServer& owner_;
  uv_loop_t loop_;
  uv_tcp_t server_;
  uv_async_t reply_async_;  // the control loop has put replies in owner_.replies_
  uv_async_t stop_async_;
  bool stopping_ = false;
  std::uint64_t next_id_ = 1;
  std::unordered_set<Connection*> connections_;               // every open connection
  std::unordered_map<std::uint64_t, Connection*> rendering_;  // waiting for the control loop
};

AdminServer::AdminServer(uv_loop_t* loop, Renderer render, std::chrono::milliseconds render_timeout)
    : loop_(loop),
      render_(std::move(render)),
      render_timeout_ms_(static_cast<std::uint64_t>(render_timeout.count())) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(const Endpoint& bind, std::string& why) {
  if (http_) {
    why = "admin server already started";
    return false;
  }
  const auto address = bind_address(bind, &why);  // an IP literal or localhost: never a lookup
  if (!address) return false;
  std::unique_ptr<Http> http;
  try {
    http = std::make_unique<Http>(*this);
  } catch (const std::runtime_error& e) {
    why = e.what();
    return false;
  }
  if (!http->listen(as_sockaddr(&*address), why)) return false;
  bound_address_ = http->bound_address();

  const int rc = render_async_.init(loop_, this, uv_async_init,
                                    [](uv_async_t* async) { owner<AdminServer>(async)->render_pending(); });
  if (rc != 0) {
    why = std::string("cannot wake the control loop: ") + uv_strerror(rc);
    return false;
  }

  http_ = std::move(http);
  thread_ = std::thread([http = http_.get()] { http->run(); });
  return true;
}

void AdminServer::stop() {
  if (!http_) return;
  http_->request_stop();
  thread_.join();
  http_.reset();
  // Nothing can wake us any more; the handle is freed by libuv's close callback, so this object
  // may be destroyed before the loop turns again.
  render_async_.close();
  requests_.clear();
  replies_.clear();
}

void AdminServer::render_pending() {
  std::vector<Request> requests;
  {
    std::lock_guard lock(mutex_);
    requests.swap(requests_);
  }
  if (requests.empty()) return;
  std::vector<Reply> replies;
  replies.reserve(requests.size());
  for (Request& request : requests) {
    AdminResponse response = plain(404, "not found\n");
    // No exception may cross the libuv callback: a failed render is this request's 500.
    try {
      if (auto rendered = render_(request.path)) response = std::move(*rendered);
    } catch (const std::exception& e) {
      spdlog::error("admin: rendering {} failed: {}", request.path, e.what());
      response = plain(500, "internal error\n");
    } catch (...) {
      spdlog::error("admin: rendering {} failed", request.path);
      response = plain(500, "internal error\n");
    }
    replies.push_back({request.id, std::move(response)});
  }
  {
    std::lock_guard lock(mutex_);
    for (Reply& reply : replies) replies_.push_back(std::move(reply));
  }
  http_->wake_for_replies();
}

}  // namespace sluice
