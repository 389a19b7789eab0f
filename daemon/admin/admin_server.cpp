#include "sluice/admin/admin_server.hpp"

#include <utility>

#include <spdlog/spdlog.h>

#include "sluice/admin/admin_http.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

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
    AdminResponse response = text_response(404, "not found\n");
    // No exception may cross the libuv callback: a failed render is this request's 500.
    try {
      if (auto rendered = render_(request.path)) response = std::move(*rendered);
    } catch (const std::exception& e) {
      spdlog::error("admin: rendering {} failed: {}", request.path, e.what());
      response = text_response(500, "internal error\n");
    } catch (...) {
      spdlog::error("admin: rendering {} failed", request.path);
      response = text_response(500, "internal error\n");
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
