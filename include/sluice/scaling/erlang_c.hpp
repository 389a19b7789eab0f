#pragma once
// The M/M/c queue (Erlang C): the probability that an arrival waits, and the wait's mean and tail.
// Pure functions, computed stably for thousands of slots (Erlang B recursion, no factorials).

#include <cstdint>
#include <optional>

namespace sluice::scaling {

/// One pool of `slots` identical servers (c), Poisson arrivals at `lambda` per second, each slot
/// completing `mu` requests per second (exponential service).
struct Queue {
  double lambda = 0;
  double mu = 0;
  std::uint32_t slots = 0;
};

/// Erlang B, B(c, a): the blocking probability of c servers offered a = lambda / mu erlangs.
/// Defined for every a >= 0 (B(0, a) = 1).
double erlang_b(std::uint32_t slots, double offered_load);

/// Erlang C, C(c, a): the probability that an arrival waits. nullopt when a >= c (no steady state).
std::optional<double> erlang_c(std::uint32_t slots, double offered_load);

/// Mean wait in the queue, Wq = C / (c mu - lambda), seconds. nullopt when rho >= 1.
std::optional<double> mean_wait(const Queue& q);

/// P(Wq > t) = C exp(-(c mu - lambda) t), t in seconds (t <= 0 gives C). nullopt when rho >= 1.
std::optional<double> wait_exceeds(const Queue& q, double t);

/// The p-quantile of the wait: the smallest t with P(Wq > t) <= 1 - p (0 when C <= 1 - p).
/// nullopt when rho >= 1. p must be in (0, 1).
std::optional<double> wait_quantile(const Queue& q, double p);

/// Mean response time, Wq + 1 / mu, seconds. nullopt when rho >= 1.
std::optional<double> mean_response(const Queue& q);

}  // namespace sluice::scaling
