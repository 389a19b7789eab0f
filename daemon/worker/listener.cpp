#include "sluice/worker/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "sluice/log/log_event.hpp"
#include "sluice/proxy/http_session.hpp"
#include "sluice/proxy/session.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

namespace {

std::optional<sockaddr_storage> peer_of(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, as_sockaddr(&peer), &length) != 0) return std::nullopt;
  return peer;
}

// For a log line: the socket's peer, or empty when it is gone already.
std::string peer_text(int fd) {
  const auto peer = peer_of(fd);
  return peer ? sockaddr_to_string(as_sockaddr(&*peer)) : std::string();
}

}  // namespace

Listener::Listener(LoopResources& resources, ListenerConfig config, Service& service)
    : resources_(resources), config_(std::move(config)), service_(&service) {}

bool Listener::start(const sockaddr* bind, bool reuse_port, std::string& why) {
  auto error_text = [] { return std::string(uv_strerror(uv_translate_sys_error(errno))); };
  fd_ = ::socket(bind->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    why = "cannot open a socket for " + sockaddr_to_string(bind) + ": " + error_text();
    return false;
  }
  const int on = 1;
  const socklen_t length = bind->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  // SO_REUSEADDR as uv_tcp_bind sets it: a restart binds while old connections are in TIME_WAIT.
  bool ok = setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
            (!reuse_port || setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0) &&
            ::bind(fd_, bind, length) == 0 && ::listen(fd_, static_cast<int>(config_.backlog)) == 0;
  std::string failure = ok ? "" : error_text();
  if (ok) {
    int rc = accept_watch_.init(resources_.loop, this, uv_poll_init, fd_);
    if (rc == 0) {
      rc = uv_poll_start(accept_watch_.get(), UV_READABLE,
                         [](uv_poll_t* watch, int, int) { owner<Listener>(watch)->on_readable(); });
    }
    if (rc != 0) {
      ok = false;
      failure = uv_strerror(rc);
      accept_watch_.close();
    }
  }
  if (!ok) {
    why = "cannot listen on " + sockaddr_to_string(bind) + ": " + failure;
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  listening_ = true;
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return true;
}

void Listener::stop_accepting() {
  if (!listening_) return;
  listening_ = false;
  for (ProxyHeaderWait& wait : header_waits_) wait.abandon();
  header_waits_.clear();
  // Closing the watch takes the socket out of epoll at once, so it may be closed right away.
  accept_watch_.close();
  ::close(fd_);
  fd_ = -1;
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  reserve_fd_ = -1;
}

void Listener::reconfigure(ListenerConfig config, Service& service) {
  config_ = std::move(config);
  service_ = &service;
}

std::string Listener::bound_address() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (fd_ < 0 || ::getsockname(fd_, as_sockaddr(&address), &length) != 0) return "?";
  return sockaddr_to_string(as_sockaddr(&address));
}

std::uint16_t Listener::bound_port() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (fd_ < 0 || ::getsockname(fd_, as_sockaddr(&address), &length) != 0) return 0;
  const sockaddr* any = as_sockaddr(&address);
  return ntohs(any->sa_family == AF_INET6 ? as_ipv6(any)->sin6_port : as_ipv4(any)->sin_port);
}

void Listener::on_readable() {
  // Until the queue is empty, as libuv's own accept loop; a session's start may stop accepting.
  while (listening_) {
    const int client_fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client_fd >= 0) {
      on_connection(client_fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;  // a client that left first: nothing to do
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EMFILE || errno == ENFILE) {
      drop_pending_clients(errno);
      return;
    }
    // Anything else (ENOBUFS, ENOMEM, EPERM): counted; the still readable socket calls again.
    reject(RejectReason::accept_error);
    log_accept_error(uv_err_name(uv_translate_sys_error(errno)));
    return;
  }
}

void Listener::drop_pending_clients(int error) {
  // The reserve descriptor freed makes room to accept each pending client and close it at once:
  // it hears a close rather than waiting on a queue that never moves, and it is counted. Without a
  // reserve (another thread took it meanwhile), the clients stay queued for the next try.
  if (reserve_fd_ < 0) reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    for (;;) {
      const int client_fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client_fd >= 0) {
        ::close(client_fd);
        reject(RejectReason::accept_error);
        continue;
      }
      if (errno != EINTR && errno != ECONNABORTED) break;
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  log_accept_error(uv_err_name(uv_translate_sys_error(error)));
}

void Listener::on_connection(int client_fd) {
  if (config_.accept_proxy) {
    await_proxy_header(client_fd);
  } else {
    open_session(client_fd, nullptr);
  }
}

void Listener::open_session(int client_fd, const proxy_protocol::Parsed* header) {
  if (config_.mode == ListenerMode::http) {
    admit(HttpSession::accept(*this, client_fd), client_fd, header);
  } else {
    admit(Session::accept(*this, client_fd), client_fd, header);
  }
}

void Listener::await_proxy_header(int client_fd) {
  // Clients still sending their header count against max_connections with the sessions.
  if (client_fd >= resources_.descriptor_ceiling) {
    log_accept_error("EMFILE");
    return refuse_before_header(client_fd, RejectReason::max_connections, "max_connections");
  }
  if (stats_.active + header_waits_.size() >= config_.max_connections) {
    return refuse_before_header(client_fd, RejectReason::max_connections, "max_connections");
  }
  // Only a trusted front may name the client: anyone else could claim an allowed address.
  if (!config_.accept_proxy_from.empty()) {
    const auto peer = peer_of(client_fd);
    if (!peer || !in_any(config_.accept_proxy_from, as_sockaddr(&*peer))) {
      return refuse_before_header(client_fd, RejectReason::not_allowed, "not_allowed");
    }
  }
  ProxyHeaderWait& wait = header_waits_.emplace_front(static_cast<ProxyHeaderWait::Events&>(*this), client_fd);
  wait.self = header_waits_.begin();
  if (int error = 0; !wait.start(resources_.loop, config_.accept_proxy_timeout, error)) {
    log_event(spdlog::level::warn, "accept_failed", {{"listener", config_.name}, {"error", uv_err_name(error)}});
    wait.abandon();
    header_waits_.erase(wait.self);
    reject(RejectReason::accept_error);
  }
}

void Listener::refuse_before_header(int client_fd, RejectReason reason, const char* end) {
  // No session yet, so no access line: a warning (limited per listener) names the socket's peer.
  const std::string peer = peer_text(client_fd);
  ::close(client_fd);
  reject(reason);
  log_event(spdlog::level::warn, "proxy_client_refused", {{"listener", config_.name}, {"peer", LogValue::text_or_null(peer)}, {"end", end}});
}

void Listener::proxy_header_received(ProxyHeaderWait& wait, int fd, const proxy_protocol::Parsed& header) {
  const proxy_protocol::Parsed copy = header;  // the wait, and the header in it, go first
  header_waits_.erase(wait.self);
  open_session(fd, &copy);
}

void Listener::proxy_header_failed(ProxyHeaderWait& wait, int fd, const char* why) {
  const std::string peer = peer_text(fd);
  ::close(fd);
  header_waits_.erase(wait.self);
  reject(RejectReason::bad_proxy_header);
  log_event(spdlog::level::warn, "bad_proxy_header", {{"listener", config_.name}, {"peer", LogValue::text_or_null(peer)}, {"error", why}});
}

template <class SessionType>
void Listener::admit(SessionType* session, int client_fd, const proxy_protocol::Parsed* header) {
  const bool full = stats_.active > config_.max_connections;  // the session counts itself already
  if (session == nullptr) return;
  // Behind a front load balancer the client is the header's: the allow list applies to it.
  if (header != nullptr && !header->local) session->use_proxied_addresses(header->source, header->destination);
  if (client_fd >= resources_.descriptor_ceiling) {
    // Refused before the process runs out, keeping descriptors for the sessions already admitted.
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
  ++resources_.accepted_total;
  session->start();
}

void Listener::log_accept_error(const char* error) {
  ++accept_errors_;
  // At most one line a second per listener: the logger limits repeated warnings (logging.hpp).
  log_event(spdlog::level::warn, "accept_error",
            {{"listener", config_.name}, {"error", error}, {"errors_total", accept_errors_}});
}

bool Listener::in_any(const std::vector<Cidr>& ranges, const sockaddr* address) {
  for (const Cidr& range : ranges) {
    if (range.contains(address)) return true;
  }
  return false;
}

bool Listener::is_allowed(const sockaddr* client) const {
  return config_.allow.empty() || in_any(config_.allow, client);
}

}  // namespace sluice
