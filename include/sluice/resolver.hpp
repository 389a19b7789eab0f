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
  /// Stops for good. An answer already being looked up is dropped; the object must outlive the
  /// loop's run (the owner destroys it after uv_run returns).
  void stop();

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
};

}  // namespace sluice
