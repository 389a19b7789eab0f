// High-resolution one-shot timers on a libuv loop, for the experiment tools (sluice-backend's service
// times, sluice-loadgen's Poisson arrivals).
//
// Why not uv_timer_t: libuv timers count in whole milliseconds against the loop's cached clock, so a
// 20 ms timer fires anywhere in about [19, 21] ms and a 0.3 ms inter-arrival gap rounds to 0 or 1 ms.
// That error is as large as the queueing effects being measured.
//
// How: one Linux timerfd (CLOCK_MONOTONIC, nanosecond resolution, armed with an absolute deadline) is
// watched by a uv_poll_t. The queue keeps every deadline in an ordered map and arms the timerfd for
// the earliest; when it fires, every entry whose deadline has passed runs, in deadline order, and the
// timerfd is re-armed for the next. The loop sleeps in epoll until the kernel's hrtimer wakes it:
// no spinning, no polling. Deadlines are uv_hrtime() values (CLOCK_MONOTONIC in nanoseconds, the
// clock Python's time.monotonic_ns() reads too).
//
// What remains is the wake-up latency: from the timer's expiry to our callback. On bare metal it is
// 5-50 us; in a small VM (these machines are Firecracker guests with 2 vCPUs) it is ~100-150 us, which
// would lengthen every 20 ms service time by ~0.6 %. So the queue learns it: it tracks the median of
// the observed latencies (a stochastic-approximation median: +/- a fixed step per wake-up, so rare long
// stalls cannot drag it) and arms the timerfd that much before each deadline. An entry runs once
// `now >= deadline - lead`: the median error is then ~0 instead of +latency. The lead is capped, and an
// early wake-up never re-arms for a time already past, so nothing ever spins. Both tools measure and
// report the remaining error (sluice-backend: elapsed - drawn service time; sluice-loadgen: send lag).

#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>

namespace sluice::tools {

class HrTimerQueue {
 public:
  using Callback = std::function<void()>;

  // Throws std::runtime_error when the timerfd or the poll handle cannot be created.
  explicit HrTimerQueue(uv_loop_t* loop);
  ~HrTimerQueue();  // closes the handle if close() was not called
  HrTimerQueue(const HrTimerQueue&) = delete;
  HrTimerQueue& operator=(const HrTimerQueue&) = delete;

  // Runs `callback` on the loop once uv_hrtime() >= deadline_ns; a deadline in the past runs at the
  // next loop iteration. Returns an id for cancel(). Callbacks may schedule and cancel.
  std::uint64_t schedule(std::uint64_t deadline_ns, Callback callback);
  bool cancel(std::uint64_t id);  // false if it already ran or was never scheduled
  std::size_t size() const { return entries_.size(); }
  std::uint64_t lead_ns() const { return lead_ns_; }  // the current wake-up latency estimate

  // Drops every pending entry and closes the handle; the loop can then end. Idempotent.
  void close();

 private:
  struct Handle;  // the uv_poll_t and the fd: freed in the close callback, which may run after we die
  static void on_readable(uv_poll_t* poll, int status, int events);
  void run_due();
  void arm();

  Handle* handle_ = nullptr;
  std::uint64_t next_id_ = 1;
  std::uint64_t armed_deadline_ns_ = 0;  // the entry deadline the timerfd is armed for; 0: disarmed
  std::uint64_t armed_expiry_ns_ = 0;    // the timerfd's own expiry (deadline - lead)
  bool armed_in_future_ = false;         // expiry was ahead of the clock when armed: a latency sample
  std::uint64_t lead_ns_ = 50'000;       // median wake-up latency estimate
  std::map<std::pair<std::uint64_t, std::uint64_t>, Callback> entries_;  // (deadline_ns, id) -> callback
  std::unordered_map<std::uint64_t, std::uint64_t> deadline_of_;        // id -> deadline_ns
};

}  // namespace sluice::tools
