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
/// Defined for every a >= 0 (B(0, a) = 1). Throws std::invalid_argument for a < 0 or not finite.
double erlang_b(std::uint32_t slots, double offered_load);

/// One step of the recursion: B(c, a) from b = B(c - 1, a). For walking c upward (recommend)
/// without starting over; erlang_b is this step applied c times from B(0, a) = 1.
double erlang_b_step(std::uint32_t slots, double offered_load, double b);

/// C(c, a) from b = B(c, a): c B / (c - a (1 - B)). nullopt when a >= c.
std::optional<double> erlang_c_from_b(std::uint32_t slots, double offered_load, double b);

/// Erlang C, C(c, a): the probability that an arrival waits. nullopt when a >= c (no steady state).
std::optional<double> erlang_c(std::uint32_t slots, double offered_load);

/// Mean wait in the queue, Wq = C / (c mu - lambda), seconds. nullopt when rho >= 1.
/// Every function taking a Queue throws std::invalid_argument for lambda < 0 or mu <= 0 (or either
/// not finite), naming it.
std::optional<double> mean_wait(const Queue& q);

/// P(Wq > t) = C exp(-(c mu - lambda) t), t in seconds (1 for t < 0: a wait is never negative).
/// nullopt when rho >= 1.
std::optional<double> wait_exceeds(const Queue& q, double t);

/// The p-quantile of the wait: the smallest t with P(Wq > t) <= 1 - p (0 when C <= 1 - p).
/// nullopt when rho >= 1. p must be in (0, 1).
std::optional<double> wait_quantile(const Queue& q, double p);

/// Mean response time, Wq + 1 / mu, seconds. nullopt when rho >= 1.
std::optional<double> mean_response(const Queue& q);

/// Wq and the p-quantile of Wq of a queue with rho < 1 whose C(c, a) is already known (the search
/// of recommend walks c upward and keeps B). mean_wait and wait_quantile are these after erlang_c.
double mean_wait_given(const Queue& q, double erlang_c);
double wait_quantile_given(const Queue& q, double erlang_c, double p);

}  // namespace sluice::scaling
