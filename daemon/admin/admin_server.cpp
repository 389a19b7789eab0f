#include "sluice/admin/admin_server.hpp"

#include <array>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <pthread.h>

#include <spdlog/spdlog.h>

#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

namespace {

constexpr std::size_t kMaxRequestHeadBytes = 8192;  // request line + headers; more gets a 431
constexpr std::size_t kMaxConnections = 64;         // more concurrent ones are closed at once
constexpr std::uint64_t kLingerMs = 1000;           // after a response: wait for the peer's FIN
constexpr int kBacklog = 64;

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

AdminResponse plain(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

struct RequestLine {
  std::string_view method;
  std::string_view path;  // the target without its query string
};

// "METHOD /path?query HTTP/1.x" on the first line of `head`; the headers are not needed.
std::optional<RequestLine> parse_request_line(std::string_view head) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (line.ends_with('\r')) line.remove_suffix(1);
  const auto first = line.find(' ');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = line.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  const std::string_view target = line.substr(first + 1, second - first - 1);
  if (first == 0 || !target.starts_with('/') || !line.substr(second + 1).starts_with("HTTP/1.")) {
    return std::nullopt;
  }
  return RequestLine{line.substr(0, first), target.substr(0, target.find('?'))};
}

bool head_complete(std::string_view data) {
  return data.find("\r\n\r\n") != std::string_view::npos ||
         data.find("\n\n") != std::string_view::npos;  // lenient: hand-typed requests
}

}  // namespace

// Everything the admin thread owns. Its handles are used only on that thread, except the two
// async handles that other threads wake it with.
class AdminServer::Http {
 public:
  explicit Http(AdminServer& owner) : owner_(owner) {
    uv_loop_init(&loop_);
    uv_tcp_init(&loop_, &server_);
    uv_async_init(&loop_, &reply_async_, [](uv_async_t* async) { self(async)->on_replies(); });
    uv_async_init(&loop_, &stop_async_, [](uv_async_t* async) { self(async)->on_stop(); });
    server_.data = reply_async_.data = stop_async_.data = this;
  }

  // After run() (or when it never ran) every handle is closed here and the loop ends.
  ~Http() {
    for (auto* handle :
         {reinterpret_cast<uv_handle_t*>(&server_), reinterpret_cast<uv_handle_t*>(&reply_async_),
          reinterpret_cast<uv_handle_t*>(&stop_async_)}) {
      if (!uv_is_closing(handle)) uv_close(handle, nullptr);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Before the thread starts.
  bool listen(const sockaddr* address, std::string& why) {
    int rc = uv_tcp_bind(&server_, address, 0);
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), kBacklog,
                     [](uv_stream_t* server, int status) { self(server)->on_connection(status); });
    }
    if (rc != 0) why = "cannot listen on " + sockaddr_to_string(address) + ": " + uv_strerror(rc);
    return rc == 0;
  }

  std::string bound_address() const {
    sockaddr_storage address{};
    int length = sizeof address;
    if (uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return "?";
    }
    return sockaddr_to_string(reinterpret_cast<const sockaddr*>(&address));
  }

  // The admin thread's body: returns once on_stop() has closed everything.
  void run() {
    pthread_setname_np(pthread_self(), "sluice-admin");
    uv_run(&loop_, UV_RUN_DEFAULT);
  }

  // Any thread.
  void request_stop() { uv_async_send(&stop_async_); }
  void wake_for_replies() { uv_async_send(&reply_async_); }

 private:
  struct Connection {
    enum class State { reading, rendering, writing, lingering };

    explicit Connection(Http& owner) : http(owner) {}
    Http& http;
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
    std::string head;           // request bytes up to the blank line
    std::string response_head;  // status line and headers, alive until written
    std::string response_body;
    std::array<char, 2048> read_buffer{};  // reads land here: no allocation per read
  };

  template <typename Handle>
  static Http* self(Handle* handle) {
    return static_cast<Http*>(handle->data);
  }
  template <typename Handle>
  static Connection* connection(Handle* handle) {
    return static_cast<Connection*>(handle->data);
  }
  static void timer_fired(uv_timer_t* timer) {
    connection(timer)->http.on_timeout(connection(timer));
  }

  void on_connection(int status) {
    if (status < 0) return;
    auto* c = new Connection(*this);
    uv_tcp_init(&loop_, &c->tcp);
    uv_timer_init(&loop_, &c->timer);
    c->tcp.data = c->timer.data = c;
    connections_.insert(c);
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&server_),
                  reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0 ||
        connections_.size() > kMaxConnections) {
      close(c);
      return;
    }
    uv_timer_start(&c->timer, timer_fired, owner_.render_timeout_ms_, 0);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
          Connection* c = connection(handle);
          *buf = uv_buf_init(c->read_buffer.data(), c->read_buffer.size());
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
          Connection* c = connection(stream);
          c->http.on_read(c, nread, buf);
        });
  }

  void on_read(Connection* c, ssize_t nread, const uv_buf_t* buf) {
    if (nread == UV_EOF) {
      c->peer_closed = true;
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
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
    c->head.append(buf->base, static_cast<std::size_t>(nread));
    if (head_complete(c->head)) {
      handle_request(c);
    } else if (c->head.size() > kMaxRequestHeadBytes) {
      respond(c, plain(431, "request head too large\n"));
    }
  }

  void handle_request(Connection* c) {
    const auto request = parse_request_line(c->head);
    if (!request) {
      respond(c, plain(400, "bad request\n"));
      return;
    }
    c->head_only = request->method == "HEAD";
    if (request->method != "GET" && !c->head_only) {
      respond(c, plain(405, "only GET and HEAD\n"), "Allow: GET, HEAD\r\n");
      return;
    }
    if (request->path == "/healthz") {
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
      owner_.requests_.push_back({c->id, std::string(request->path)});
    }
    uv_async_send(owner_.render_async_);
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
    c->response_head =
        "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) +
        "\r\nContent-Type: " + response.content_type +
        "\r\nContent-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n";
    c->response_head += extra_headers;
    c->response_head += "\r\n";
    c->response_body = c->head_only ? std::string() : std::move(response.body);
    const std::array<uv_buf_t, 2> bufs = {
        uv_buf_init(c->response_head.data(), c->response_head.size()),
        uv_buf_init(c->response_body.data(), c->response_body.size())};
    uv_timer_start(&c->timer, timer_fired, stopping_ ? kLingerMs : owner_.render_timeout_ms_, 0);
    const int rc = uv_write(&c->write_request, reinterpret_cast<uv_stream_t*>(&c->tcp), bufs.data(),
                            bufs.size(), [](uv_write_t* request, int status) {
                              Connection* c = connection(request->handle);
                              c->http.on_written(c, status);
                            });
    if (rc != 0) close(c);
  }

  void on_written(Connection* c, int status) {
    if (status < 0 || c->peer_closed || stopping_) {
      close(c);
      return;
    }
    // Close only after the client's FIN: closing with its unread bytes (headers we did not need)
    // still queued would send a reset, and the client could lose the response.
    c->state = Connection::State::lingering;
    uv_shutdown(&c->shutdown_request, reinterpret_cast<uv_stream_t*>(&c->tcp),
                [](uv_shutdown_t*, int) {});
    uv_timer_start(&c->timer, timer_fired, kLingerMs, 0);
  }

  void close(Connection* c) {
    if (c->closing) return;
    c->closing = true;
    if (c->state == Connection::State::rendering) rendering_.erase(c->id);
    connections_.erase(c);
    auto on_closed = [](uv_handle_t* handle) {
      Connection* c = connection(handle);
      if (--c->open_handles == 0) delete c;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_closed);
  }

  void on_stop() {
    stopping_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&reply_async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
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
  auto http = std::make_unique<Http>(*this);
  if (!http->listen(as_sockaddr(&*address), why)) return false;
  bound_address_ = http->bound_address();

  render_async_ = new uv_async_t;
  uv_async_init(loop_, render_async_, [](uv_async_t* async) {
    static_cast<AdminServer*>(async->data)->render_pending();
  });
  render_async_->data = this;

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
  uv_close(reinterpret_cast<uv_handle_t*>(render_async_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_async_t*>(handle); });
  render_async_ = nullptr;
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
