#pragma once
// A one-shot timeout that is re-armed often and seldom expires: HttpSession moves its one timeout
// several times a request (request, queue, connect, response and idle timeouts). Each libuv
// uv_timer_start or uv_timer_stop is a heap removal or insertion (~500 instructions with 50
// connections on a loop). This timer moves libuv's only when a deadline comes earlier than the
// one libuv holds; a later deadline is just noted, and when libuv's timer fires before it, it is
// started again for the rest. stop() forgets the deadline and leaves libuv's timer to fire once
// for nothing. The callback runs when the loop's time (uv_now) reaches the deadline, as with
// uv_timer_start(timeout_ms) from the same loop time.

#include <cstdint>
#include <limits>

#include <uv.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

class DeadlineTimer {
 public:
  using Callback = void (*)(void* owner);

  /// Returns libuv's code (the timer stays empty on failure).
  int init(uv_loop_t* loop, void* owner, Callback on_expired);
  /// `on_expired(owner)` runs `timeout_ms` from the loop's now, instead of at any earlier deadline.
  /// Returns libuv's code.
  int start(std::uint64_t timeout_ms);
  /// No callback until the next start().
  void stop() { deadline_ms_ = kNone; }
  /// A deadline is set (started and neither stopped nor expired).
  bool active() const { return deadline_ms_ != kNone; }
  /// No callback after this (Handle::close).
  void close();
  explicit operator bool() const { return static_cast<bool>(timer_); }

 private:
  static constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();
  void on_fired();

  Handle<uv_timer_t> timer_;
  void* owner_ = nullptr;
  Callback on_expired_ = nullptr;
  std::uint64_t deadline_ms_ = kNone;  // loop time at which on_expired runs
  std::uint64_t due_ms_ = kNone;       // loop time at which libuv's timer fires (kNone: not started)
};

}  // namespace sluice
