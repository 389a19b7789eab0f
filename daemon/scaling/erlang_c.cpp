#include "sluice/scaling/erlang_c.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace sluice::scaling {

namespace {

void check_load(double offered_load) {
  if (!std::isfinite(offered_load) || offered_load < 0) {
    throw std::invalid_argument("offered load must be a finite number >= 0 (got " +
                                std::to_string(offered_load) + ")");
  }
}

void check_queue(const Queue& q) {
  if (!std::isfinite(q.lambda) || q.lambda < 0) {
    throw std::invalid_argument("lambda (arrival rate) must be a finite number >= 0 (got " +
                                std::to_string(q.lambda) + ")");
  }
  if (!std::isfinite(q.mu) || q.mu <= 0) {
    throw std::invalid_argument("mu (service rate per slot) must be a finite number > 0 (got " +
                                std::to_string(q.mu) + ")");
  }
}

void check_probability(double p) {
  if (!(p > 0 && p < 1)) {
    throw std::invalid_argument("quantile p must be in (0, 1) (got " + std::to_string(p) + ")");
  }
}

// C(c, a), or nullopt when the queue has no steady state. Besides a >= c, c mu - lambda must be > 0
// in floating point too: it divides every figure derived from C.
std::optional<double> queue_erlang_c(const Queue& q) {
  check_queue(q);
  const double drain_rate = q.slots * q.mu - q.lambda;
  if (!(drain_rate > 0)) return std::nullopt;
  return erlang_c(q.slots, q.lambda / q.mu);
}

}  // namespace

double erlang_b_step(std::uint32_t slots, double offered_load, double b) {
  // B(k) = a B(k-1) / (k + a B(k-1)): every term stays in [0, 1], so nothing overflows at any c; for
  // c far above a, B underflows towards 0, which is its value.
  const double ab = offered_load * b;
  return ab / (slots + ab);
}

double erlang_b(std::uint32_t slots, double offered_load) {
  check_load(offered_load);
  double b = 1.0;  // B(0, a)
  for (std::uint32_t k = 1; k <= slots; ++k) b = erlang_b_step(k, offered_load, b);
  return b;
}

std::optional<double> erlang_c_from_b(std::uint32_t slots, double offered_load, double b) {
  check_load(offered_load);
  if (offered_load >= slots) return std::nullopt;
  // C = c B / (c - a (1 - B)); the denominator exceeds c - a > 0. C <= 1 exactly; min() keeps a
  // rounding error from making a probability above 1.
  return std::min(1.0, slots * b / (slots - offered_load * (1.0 - b)));
}

std::optional<double> erlang_c(std::uint32_t slots, double offered_load) {
  return erlang_c_from_b(slots, offered_load, erlang_b(slots, offered_load));
}

double mean_wait_given(const Queue& q, double erlang_c) {
  return erlang_c / (q.slots * q.mu - q.lambda);
}

double wait_quantile_given(const Queue& q, double erlang_c, double p) {
  check_probability(p);
  // P(Wq > t) = C exp(-(c mu - lambda) t) <= 1 - p: already at t = 0 when C <= 1 - p.
  if (erlang_c <= 1 - p) return 0;
  return std::log(erlang_c / (1 - p)) / (q.slots * q.mu - q.lambda);
}

std::optional<double> mean_wait(const Queue& q) {
  const auto c = queue_erlang_c(q);
  if (!c) return std::nullopt;
  return mean_wait_given(q, *c);
}

std::optional<double> wait_exceeds(const Queue& q, double t) {
  if (std::isnan(t)) throw std::invalid_argument("wait t must be a number (got NaN)");
  const auto c = queue_erlang_c(q);
  if (!c) return std::nullopt;
  if (t < 0) return 1.0;
  return *c * std::exp(-(q.slots * q.mu - q.lambda) * t);
}

std::optional<double> wait_quantile(const Queue& q, double p) {
  check_probability(p);
  const auto c = queue_erlang_c(q);
  if (!c) return std::nullopt;
  return wait_quantile_given(q, *c, p);
}

std::optional<double> mean_response(const Queue& q) {
  const auto wq = mean_wait(q);
  if (!wq) return std::nullopt;
  return *wq + 1 / q.mu;
}

}  // namespace sluice::scaling
