#pragma once
// A cumulative-bucket histogram of durations in seconds, owned by one event loop (no locking):
// observations are plain increments and a snapshot is copied out at collection.

#include <array>
#include <cstdint>

#include "sluice/metrics/exact_metrics.hpp"

namespace sluice {

class DurationHistogram {
 public:
  /// Upper bounds in seconds: waits from 100 us to 60 s (the +Inf bucket is implicit).
  static constexpr std::array<double, 19> kBoundsSeconds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,     1.0,    2.5,   5.0,    10.0,  20.0,  30.0,  60.0};

  void observe(double seconds) {
    if constexpr (!kExactMetrics) return;
    std::size_t i = 0;
    while (i < kBoundsSeconds.size() && seconds > kBoundsSeconds[i]) ++i;
    ++counts_[i];
    ++count_;
    sum_seconds_ += seconds;
  }

  /// Observations in bucket i alone (not cumulative); index kBoundsSeconds.size() is +Inf.
  std::uint64_t bucket_count(std::size_t i) const { return counts_[i]; }
  std::uint64_t count() const { return count_; }
  double sum_seconds() const { return sum_seconds_; }

 private:
  std::array<std::uint64_t, kBoundsSeconds.size() + 1> counts_{};
  std::uint64_t count_ = 0;
  double sum_seconds_ = 0;
};

}  // namespace sluice
