#pragma once
// Periodic DNS resolution of one host name on the loop's thread pool (uv_getaddrinfo): the loop
// never blocks on DNS. Reports every answer; the Service decides what a change means.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <sys/socket.h>
#include <uv.h>

#include "sluice/endpoint.hpp"
#include "sluice/duration.hpp"

namespace sluice {

class Resolver {
 public:
  struct Callbacks {
    /// `first`: this is the answer to the very first query (made by start()).
    std::function<void(const sockaddr_storage& address, bool first)> resolved;
    std::function<void(std::string_view error, bool first)> failed;
  };

  Resolver(uv_loop_t* loop, Endpoint endpoint, Millis interval, Callbacks callbacks);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  /// Resolves now, then every interval.
  void start();
  /// Stops for good. An answer already being looked up is dropped.
  void stop();
  /// Stopped, its timer closed and no lookup in flight: the object may be destroyed.
  bool finished() const { return stopped_ && !timer_open_ && !in_flight_; }

 private:
  void query();
  void on_answer(int status, addrinfo* result);

  uv_loop_t* loop_;
  Endpoint endpoint_;
  std::string port_;
  Millis interval_;
  Callbacks callbacks_;
  uv_timer_t timer_{};
  uv_getaddrinfo_t request_{};
  bool in_flight_ = false;
  bool answered_ = false;  // some query has completed
  bool stopped_ = false;
  bool timer_open_ = true;  // until the close callback
};

}  // namespace sluice
