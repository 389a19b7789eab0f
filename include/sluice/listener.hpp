#pragma once
// A listening socket: accepts clients, admits them (max_connections, allow list) and hands each
// admitted one to a new Session for its service. Knows nothing of balancing.

#include <cstdint>
#include <string>

#include <uv.h>

#include "sluice/config.hpp"

namespace sluice {

class Service;
struct Worker;

class Listener {
 public:
  Listener(Worker& worker, ListenerConfig config, Service& service);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// Binds and listens on `bind`; false with `why` naming the address and the reason on failure.
  bool start(const sockaddr* bind, std::string& why);

  /// Stops accepting; the socket is closed on the next loop turn. Sessions carry on.
  void stop_accepting();

  /// "ip:port" actually bound (the real port when 0 was configured).
  std::string bound_address() const;

  const ListenerConfig& config() const { return config_; }
  Service& service() { return service_; }
  Worker& worker() { return worker_; }

  void session_opened() { ++active_connections_; }
  void session_closed() { --active_connections_; }
  std::uint32_t active_connections() const { return active_connections_; }

  std::uint64_t accepted_total() const { return accepted_total_; }
  std::uint64_t rejected_total() const { return rejected_total_; }

 private:
  void on_connection(int status);
  bool is_allowed(const sockaddr* client) const;

  Worker& worker_;
  ListenerConfig config_;
  Service& service_;
  uv_tcp_t server_;
  bool listening_ = false;
  std::uint32_t active_connections_ = 0;
  std::uint64_t accepted_total_ = 0;
  std::uint64_t rejected_total_ = 0;
  std::uint64_t accept_errors_ = 0;
  std::uint64_t last_accept_error_log_ms_ = 0;
};

}  // namespace sluice
