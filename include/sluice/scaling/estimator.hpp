#pragma once
// The scaling signal's estimates over a sliding window, from cumulative sums (LoadSums) copied
// once a second: the difference between the newest copy and the one a window older gives the
// arrivals, the inter-arrival gaps and the slot times inside the window. Pure arithmetic, no clock
// of its own: the caller says when each copy was taken.

#include <cstdint>
#include <deque>
#include <optional>

#include "sluice/config/duration.hpp"
#include "sluice/metrics/stats.hpp"

namespace sluice::scaling {

/// Enough data for a model: estimates over less are noise.
inline constexpr double kMinSpanSeconds = 10;
inline constexpr std::uint64_t kMinCompletions = 20;

struct WindowEstimate {
  double span_seconds = 0;           // time the two copies are apart (at most the window)
  std::uint64_t arrivals = 0;        // in the span
  std::uint64_t completions = 0;     // slots released in the span
  double arrival_rate = 0;           // lambda: arrivals / span, per second
  double mean_service_seconds = 0;   // 1/mu: mean slot time (0 without a completion)
  double arrival_cv = 0;             // stddev / mean of the inter-arrival gaps (0 with fewer than 2)
  double service_cv = 0;             // stddev / mean of the slot times (0 with fewer than 2)
  bool warm = false;                 // span >= kMinSpanSeconds and completions >= kMinCompletions
};

/// sqrt(E[x^2] - E[x]^2) / E[x] of `count` values with sum `sum` and sum of squares `squares`;
/// 0 when count < 2 or the mean is 0. Rounding can make the variance slightly negative: 0 then.
double coefficient_of_variation(std::uint64_t count, double sum, double squares);

class Estimator {
 public:
  explicit Estimator(Millis window) : window_(window) {}

  Millis window() const { return window_; }

  /// The cumulative sums at `now_ns` (nondecreasing). Sums that went backwards (the service was
  /// removed and added again) restart the window from this copy.
  void add(std::uint64_t now_ns, const LoadSums& cumulative);

  /// Over the newest copy and the oldest one kept (a window older, or the first while the window
  /// fills); nullopt before two copies.
  std::optional<WindowEstimate> estimate() const;

 private:
  struct Copy {
    std::uint64_t at_ns;
    LoadSums sums;
  };
  Millis window_;
  std::deque<Copy> copies_;  // oldest first; the front is the base of the window
};

}  // namespace sluice::scaling
