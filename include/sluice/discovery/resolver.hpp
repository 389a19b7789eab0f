#pragma once
// Periodic DNS resolution of one host name through the process's DnsClient (c-ares on the control
// loop): no thread, at most one lookup in flight, each answer with every A and AAAA record of the
// name. A lookup that never returns cannot hold anything up: the DnsClient's deadline fails it,
// and stop() cancels it. Reports every answer; the ServiceMonitor decides what a change means.

#include <functional>
#include <string_view>
#include <vector>

#include <sys/socket.h>
#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/discovery/dns_client.hpp"
#include "sluice/net/endpoint.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class Resolver {
 public:
  struct Callbacks {
    /// Every address of the name (at least one), in DnsClient's stable order. `first`: this is the
    /// answer to the very first query (made by start()).
    std::function<void(const std::vector<sockaddr_storage>& addresses, bool first)> resolved;
    std::function<void(std::string_view error, bool first)> failed;
  };

  Resolver(uv_loop_t* loop, DnsClient& dns, Endpoint endpoint, Millis interval, Callbacks callbacks);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  /// Resolves now, then every interval.
  void start();
  /// Stops for good. A lookup in flight is cancelled: its answer never comes. The object may be
  /// destroyed at any time (its timer frees itself, a lookup is cancelled with it).
  void stop();

  /// The addresses of the last successful answer (empty before one).
  const std::vector<sockaddr_storage>& addresses() const { return addresses_; }

 private:
  void query();
  void on_answer(DnsAnswer answer);

  uv_loop_t* loop_;
  DnsClient& dns_;
  Endpoint endpoint_;
  Millis interval_;
  Callbacks callbacks_;
  Handle<uv_timer_t> timer_;
  DnsLookup lookup_;  // the lookup in flight, if any
  std::vector<sockaddr_storage> addresses_;
  bool answered_once_ = false;
  bool stopped_ = false;
};

}  // namespace sluice
