#pragma once
// The exact integral over time of a piecewise-constant count (queue length, connections in
// service). Updated at every change of the count and read "up to now" at collection, so its rate
// over any window is the time-average of the count in that window (Lq, L, utilisation).

#include <cstdint>

#include "sluice/metrics/exact_metrics.hpp"

namespace sluice {

class TimeIntegral {
 public:
  /// The count changes by `delta` at `now_ns` (a monotonic clock in nanoseconds, never going back).
  void add(std::uint64_t now_ns, std::int64_t delta) { set(now_ns, value_ + delta); }

  /// The count becomes `value` at `now_ns`.
  void set(std::uint64_t now_ns, std::int64_t value) {
    accumulate(now_ns);
    value_ = value;
  }

  std::int64_t value() const { return value_; }

  /// Integral of the count from the first change up to `now_ns`, in count-seconds.
  double seconds_total(std::uint64_t now_ns) const {
    return accumulated_seconds_ + value_seconds(now_ns);
  }

  /// Integral of "count > 0" (time with at least one) up to `now_ns`, in seconds.
  double busy_seconds_total(std::uint64_t now_ns) const {
    return busy_seconds_ + (value_ > 0 ? elapsed_seconds(now_ns) : 0.0);
  }

 private:
  void accumulate(std::uint64_t now_ns) {
    if constexpr (!kExactMetrics) return;
    if (value_ > 0) busy_seconds_ += elapsed_seconds(now_ns);
    accumulated_seconds_ += value_seconds(now_ns);
    if (now_ns > last_change_ns_) last_change_ns_ = now_ns;
  }
  double elapsed_seconds(std::uint64_t now_ns) const {
    return now_ns > last_change_ns_ ? static_cast<double>(now_ns - last_change_ns_) * 1e-9 : 0.0;
  }
  double value_seconds(std::uint64_t now_ns) const {
    return static_cast<double>(value_) * elapsed_seconds(now_ns);
  }

  std::int64_t value_ = 0;
  std::uint64_t last_change_ns_ = 0;  // when value_ last changed (integral accounted up to here)
  double accumulated_seconds_ = 0;    // count-seconds up to last_change_ns_
  double busy_seconds_ = 0;           // seconds with value_ > 0 up to last_change_ns_
};

}  // namespace sluice
