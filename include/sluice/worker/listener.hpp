#pragma once
// A listening socket: accepts clients, admits them (max_connections, allow list) and hands each
// admitted one to a new Session for its service. Knows nothing of balancing.
//
// Accepting is done here, not by uv_listen: out of descriptors, libuv accepts and closes the
// pending clients itself without telling anyone; here each such client is counted.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <uv.h>

#include "sluice/config/config.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/uv/handle.hpp"
#include "sluice/worker/proxy_header_wait.hpp"

namespace sluice {

class Service;
struct LoopResources;

class Listener final : private ProxyHeaderWait::Events {
 public:
  Listener(LoopResources& resources, ListenerConfig config, Service& service);
  ~Listener() { stop_accepting(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// Binds and listens on `bind`; false with `why` naming the address and the reason on failure.
  /// `reuse_port` sets SO_REUSEPORT first, so that every worker binds the port and the kernel
  /// spreads new connections over them.
  bool start(const sockaddr* bind, bool reuse_port, std::string& why);

  /// Stops accepting and closes the socket. Sessions carry on.
  void stop_accepting();
  /// After a reload that kept this socket: new clients get the new settings and service;
  /// sessions already open keep the service they started with.
  void reconfigure(ListenerConfig config, Service& service);
  /// Sessions still refer to it: it may not go yet.
  bool in_use() const { return stats_.active != 0; }
  /// Runs (on this loop, from inside the closing session) after each session ends: how the worker
  /// learns that a replaced listener or service lost its last session.
  void on_session_closed(std::function<void()> hook) { session_closed_hook_ = std::move(hook); }

  /// "ip:port" actually bound (the real port when 0 was configured).
  std::string bound_address() const;
  /// The port actually bound (0 if none).
  std::uint16_t bound_port() const;

  const ListenerConfig& config() const { return config_; }
  Service& service() { return *service_; }
  LoopResources& resources() { return resources_; }

  void session_opened() { ++stats_.active; }
  void session_closed() {
    --stats_.active;
    if (session_closed_hook_) session_closed_hook_();
  }
  void reject(RejectReason reason) { stats_.reject(reason); }
  void count_spliced(std::uint64_t bytes) { stats_.spliced_bytes_total += bytes; }
  void count_http_request() { ++stats_.http_requests_total; }
  void count_http_error(HttpError error) { ++stats_.http_errors_total[static_cast<std::size_t>(error)]; }
  const ListenerStats& stats() const { return stats_; }

 private:
  void on_readable();
  void on_connection(int client_fd);
  /// A client of an accept_proxy listener: its session starts once its PROXY header is read.
  void await_proxy_header(int client_fd);
  void proxy_header_received(ProxyHeaderWait& wait, int fd, const proxy_protocol::Parsed& header) override;
  void proxy_header_failed(ProxyHeaderWait& wait, int fd, const char* why) override;
  /// Makes the session for `client_fd`; `header`: the addresses a PROXY header gave (or nullptr).
  void open_session(int client_fd, const proxy_protocol::Parsed* header);
  /// Checks a new session's client (max_connections, descriptors, allow list) and starts it.
  template <class SessionType>
  void admit(SessionType* session, int client_fd, const proxy_protocol::Parsed* header);
  void drop_pending_clients(int error);
  bool is_allowed(const sockaddr* client) const;
  static bool in_any(const std::vector<Cidr>& ranges, const sockaddr* address);
  void refuse_before_header(int client_fd, RejectReason reason, const char* end);
  void log_accept_error(const char* error);

  LoopResources& resources_;
  ListenerConfig config_;
  Service* service_;
  int fd_ = -1;                      // the listening socket
  Handle<uv_poll_t> accept_watch_;   // readable: clients are pending
  int reserve_fd_ = -1;              // held free for drop_pending_clients
  bool listening_ = false;
  ListenerStats stats_;
  std::uint64_t accept_errors_ = 0;
  std::function<void()> session_closed_hook_;
  ProxyHeaderWait::List header_waits_;  // accept_proxy: clients whose header is still to come
};

}  // namespace sluice
