#pragma once
// The admin HTTP endpoint (GET /metrics, /healthz, ...). Its sockets live on a thread of its own
// with its own libuv loop, so a slow or hostile scraper never costs the control loop anything but
// the rendering. Responses that need daemon state are rendered ON the control loop: the admin
// thread queues the path, wakes the control loop with a uv_async_t, and the control loop hands the
// body back the same way. The admin thread never waits for the control loop (a render that is late
// gets a 503), and /healthz is answered on the admin thread itself.
//
// Why not civetweb (which prometheus-cpp's Exposer uses): Debian 12's libcivetweb 1.15 is built
// without IPv6 (mg_check_feature(8) == 0; "[::1]:0" is an "invalid port spec"), and admin.bind
// accepts "[v6]:port" like every other address. libuv is already here and does both families.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <uv.h>

#include "sluice/net/endpoint.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
 public:
  /// Runs ON THE CONTROL LOOP THREAD with the request path (query string removed) and returns the
  /// response for a path it serves; nullopt means 404. An exception becomes a 500.
  using Renderer = std::function<std::optional<AdminResponse>(std::string_view path)>;

  /// `render_timeout`: a request that the control loop has not answered after this long (counted
  /// from the accept) gets a 503; it also bounds how long a slow client may take to send one.
  AdminServer(uv_loop_t* loop, Renderer render,
              std::chrono::milliseconds render_timeout = std::chrono::seconds(5));
  ~AdminServer();  // stop()s if still running; on the loop thread
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Binds `bind` (port 0: the kernel picks one) and starts the admin thread. On the loop thread.
  /// From here until stop() the server holds a handle on `loop`, which keeps it running.
  bool start(const Endpoint& bind, std::string& why);

  /// "ip:port" actually bound, e.g. "127.0.0.1:41234" or "[::1]:41234"; "" before start().
  std::string bound_address() const { return bound_address_; }

  /// /healthz answers 200 "ok" normally and 503 "draining" once this is set. Any thread.
  void set_draining(bool draining) { draining_.store(draining, std::memory_order_relaxed); }

  /// Called on the admin thread for every /healthz: empty when the process is live, else why not
  /// (then 503 with that text). Set before start(); it must be safe to call from that thread.
  using Liveness = std::function<std::string()>;
  void set_liveness(Liveness liveness) { liveness_ = std::move(liveness); }

  /// Closes the admin socket and its connections (a request waiting for the loop gets a 503),
  /// joins the admin thread, then closes the handle on the control loop. On the loop thread.
  void stop();

 private:
  class Http;  // the admin thread's loop, listening socket and connections (admin_server.cpp)

  struct Request {
    std::uint64_t id;
    std::string path;
  };
  struct Reply {
    std::uint64_t id;
    AdminResponse response;
  };

  void render_pending();  // control loop: answers every queued request

  uv_loop_t* loop_;
  Renderer render_;
  std::uint64_t render_timeout_ms_;
  std::atomic<bool> draining_{false};
  Liveness liveness_;
  std::string bound_address_;

  std::mutex mutex_;               // guards the two queues between the threads
  std::vector<Request> requests_;  // admin thread -> control loop
  std::vector<Reply> replies_;     // control loop -> admin thread

  Handle<uv_async_t> render_async_;  // on `loop_`: the admin thread wakes the control loop with it
  std::unique_ptr<Http> http_;
  std::thread thread_;
};

}  // namespace sluice
