#pragma once
// Periodic DNS resolution of one host name, off the loop: each lookup runs getaddrinfo on a
// detached thread of its own and hands its answer back through a uv_async_t. Not libuv's thread
// pool (uv_getaddrinfo): a lookup that never returns (a DNS server that does not answer) would
// hold a pool thread, and the loop could not finish until it did, so a pod asked to stop could
// outlive its grace period. A lookup thread that outlives its Resolver finds it abandoned and
// just ends. Reports every answer; the Service decides what a change means.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <sys/socket.h>
#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/net/endpoint.hpp"

namespace sluice {

class Resolver {
 public:
  struct Callbacks {
    /// `first`: this is the answer to the very first query (made by start()).
    std::function<void(const sockaddr_storage& address, bool first)> resolved;
    std::function<void(std::string_view error, bool first)> failed;
  };

  Resolver(uv_loop_t* loop, Endpoint endpoint, Millis interval, Callbacks callbacks);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  /// Resolves now, then every interval.
  void start();
  /// Stops for good. A lookup still running is abandoned: its answer is dropped.
  void stop();
  /// Stopped with its handles closed: the object may be destroyed.
  bool finished() const { return stopped_ && open_handles_ == 0; }

 private:
  struct Lookup;  // shared by the loop and one lookup thread
  void query();
  void on_answer();

  Endpoint endpoint_;
  Millis interval_;
  Callbacks callbacks_;
  uv_timer_t timer_{};
  uv_async_t answered_{};            // a lookup thread signals its answer
  std::shared_ptr<Lookup> lookup_;   // the lookup in flight, if any
  bool answered_once_ = false;
  bool stopped_ = false;
  int open_handles_ = 2;             // until their close callbacks
};

}  // namespace sluice
