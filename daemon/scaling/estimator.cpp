#include "sluice/scaling/estimator.hpp"

#include <cmath>

namespace sluice::scaling {

namespace {

bool went_backwards(const LoadSums& later, const LoadSums& earlier) {
  return later.arrivals < earlier.arrivals || later.gaps < earlier.gaps || later.completions < earlier.completions;
}

}  // namespace

double coefficient_of_variation(std::uint64_t count, double sum, double squares) {
  if (count < 2 || sum <= 0) return 0;
  const double n = static_cast<double>(count);
  const double mean = sum / n;
  const double variance = squares / n - mean * mean;
  return variance > 0 ? std::sqrt(variance) / mean : 0;
}

void Estimator::add(std::uint64_t now_ns, const LoadSums& cumulative) {
  if (!copies_.empty() && (went_backwards(cumulative, copies_.back().sums) || now_ns < copies_.back().at_ns)) {
    copies_.clear();
  }
  copies_.push_back({now_ns, cumulative});
  // Keep the newest copy that is at least a window old as the base; drop the older ones.
  const auto window_ns = static_cast<std::uint64_t>(window_.count()) * 1'000'000;
  while (copies_.size() > 2 && now_ns - copies_[1].at_ns >= window_ns) copies_.pop_front();
}

std::optional<WindowEstimate> Estimator::estimate() const {
  if (copies_.size() < 2) return std::nullopt;
  const LoadSums& from = copies_.front().sums;
  const LoadSums& to = copies_.back().sums;
  WindowEstimate e;
  e.span_seconds = static_cast<double>(copies_.back().at_ns - copies_.front().at_ns) * 1e-9;
  e.arrivals = to.arrivals - from.arrivals;
  e.completions = to.completions - from.completions;
  e.arrival_rate = e.span_seconds > 0 ? static_cast<double>(e.arrivals) / e.span_seconds : 0;
  const double slot_seconds = to.slot_seconds - from.slot_seconds;
  e.mean_service_seconds = e.completions > 0 ? slot_seconds / static_cast<double>(e.completions) : 0;
  e.arrival_cv = coefficient_of_variation(to.gaps - from.gaps, to.gap_seconds - from.gap_seconds,
                                          to.gap_squares - from.gap_squares);
  e.service_cv = coefficient_of_variation(e.completions, slot_seconds, to.slot_squares - from.slot_squares);
  e.warm = e.span_seconds >= kMinSpanSeconds && e.completions >= kMinCompletions && e.mean_service_seconds > 0;
  return e;
}

}  // namespace sluice::scaling
