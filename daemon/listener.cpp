#include "sluice/listener.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "sluice/session.hpp"
#include "sluice/sockaddr_text.hpp"
#include "sluice/worker.hpp"

namespace sluice {

namespace {

constexpr std::uint64_t kAcceptErrorLogIntervalMs = 1000;

}  // namespace

Listener::Listener(Worker& worker, ListenerConfig config, Service& service)
    : worker_(worker), config_(std::move(config)), service_(&service) {}

bool Listener::start(const sockaddr* bind, bool reuse_port, std::string& why) {
  // With a family given, libuv creates the socket now, so that options can be set before bind.
  int rc = uv_tcp_init_ex(worker_.loop, &server_, bind->sa_family);
  if (rc != 0) {
    why = "cannot open a socket for " + sockaddr_to_string(bind) + ": " + uv_strerror(rc);
    return false;
  }
  server_.data = this;
  listening_ = true;
  socket_open_ = true;
  if (reuse_port) rc = set_reuse_port();
  if (rc == 0) rc = uv_tcp_bind(&server_, bind, 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), static_cast<int>(config_.backlog),
                   [](uv_stream_t* server, int status) {
                     static_cast<Listener*>(server->data)->on_connection(status);
                   });
  }
  if (rc != 0) {
    why = "cannot listen on " + sockaddr_to_string(bind) + ": " + uv_strerror(rc);
    stop_accepting();
    return false;
  }
  return true;
}

int Listener::set_reuse_port() {
  uv_os_fd_t fd;
  if (int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&server_), &fd); rc != 0) return rc;
  const int on = 1;
  return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0 ? 0 : uv_translate_sys_error(errno);
}

void Listener::stop_accepting() {
  if (!listening_) return;
  listening_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&server_),
           [](uv_handle_t* handle) { static_cast<Listener*>(handle->data)->socket_open_ = false; });
}

void Listener::reconfigure(ListenerConfig config, Service& service) {
  config_ = std::move(config);
  service_ = &service;
}

std::string Listener::bound_address() const {
  sockaddr_storage address{};
  int length = sizeof address;
  if (uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "?";
  return sockaddr_to_string(reinterpret_cast<const sockaddr*>(&address));
}

std::uint16_t Listener::bound_port() const {
  sockaddr_storage address{};
  int length = sizeof address;
  if (uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  const auto* any = reinterpret_cast<const sockaddr*>(&address);
  return ntohs(any->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(any)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(any)->sin_port);
}

void Listener::on_connection(int status) {
  auto* server = reinterpret_cast<uv_stream_t*>(&server_);
  if (status < 0) {
    // libuv already accepted and dropped the pending client with its reserve descriptor, so the
    // loop does not spin.
    log_accept_error(uv_err_name(status));
    return;
  }
  const bool full = stats_.active >= config_.max_connections;
  Session* session = Session::accept(*this, server);
  if (session == nullptr) return;
  if (session->client_descriptor() >= worker_.descriptor_ceiling) {
    // Refused before the process runs out: libuv's own way out of EMFILE drops clients silently.
    log_accept_error("EMFILE");
    reject(RejectReason::max_connections);
    session->refuse("max_connections");
    return;
  }
  if (full) {
    reject(RejectReason::max_connections);
    session->refuse("max_connections");
    return;
  }
  if (!config_.allow.empty() && !is_allowed(session->client_address())) {
    reject(RejectReason::not_allowed);
    session->refuse("not_allowed");
    return;
  }
  ++stats_.accepted_total;
  ++worker_.accepted_total;
  session->start();
}

void Listener::log_accept_error(const char* error) {
  ++accept_errors_;
  const std::uint64_t now = uv_now(worker_.loop);
  if (now - last_accept_error_log_ms_ < kAcceptErrorLogIntervalMs) return;  // at most once a second
  last_accept_error_log_ms_ = now;
  spdlog::warn("accept_error listener={} error={} errors_total={}", config_.name, error, accept_errors_);
}

bool Listener::is_allowed(const sockaddr* client) const {
  if (config_.allow.empty()) return true;
  for (const Cidr& range : config_.allow) {
    if (range.contains(client)) return true;
  }
  return false;
}

}  // namespace sluice
