#pragma once
// How many slots (and backends) a pool needs so that its mean wait, and optionally a quantile of
// its wait, stays under a target: the smallest c meeting both under M/M/c, corrected by
// Allen-Cunneen when the measured variability is far from Poisson/exponential.

#include <cstdint>
#include <optional>

#include "sluice/scaling/allen_cunneen.hpp"

namespace sluice::scaling {

struct QuantileTarget {
  double p = 0.95;           // in (0, 1)
  double wait_seconds = 0;   // the p-quantile of the wait must not exceed this
};

struct Target {
  double mean_wait_seconds = 0;
  std::optional<QuantileTarget> quantile;
};

struct RecommendInput {
  double lambda = 0;                 // arrivals per second
  double mu = 0;                     // completions per second per slot
  std::uint32_t current_slots = 0;   // slots in service now (0: none, no "now" figures)
  Variability variability;
  Target target;
  std::uint32_t slots_per_backend = 1;
  std::uint32_t min_backends = 1;
  std::uint32_t max_backends = 1;
};

enum class Clamp { none, min_backends, max_backends };

struct Recommendation {
  RecommendInput input;
  double offered_load = 0;                      // a = lambda / mu
  bool corrected = false; double factor = 1;    // Allen-Cunneen applied, and its factor
  std::optional<double> utilisation_now;        // rho at current_slots (nullopt if current_slots == 0)
  std::optional<double> erlang_c_now, wait_now, quantile_wait_now;   // at current_slots; nullopt: rho >= 1
  std::uint32_t slots = 0;                      // c*
  double utilisation = 0, erlang_c = 0, wait = 0; std::optional<double> quantile_wait;  // at c*
  std::uint32_t backends = 0; Clamp clamp = Clamp::none;
};

/// The largest c the search tries before giving up with std::runtime_error.
inline constexpr std::uint32_t kMaxSlots = 10'000'000;

/// Throws std::invalid_argument naming the bad input (lambda < 0, mu <= 0, targets <= 0, p not in (0,1),
/// slots_per_backend 0, min > max). lambda == 0 gives slots 0 -> backends = min_backends.
Recommendation recommend(const RecommendInput& in);

}  // namespace sluice::scaling
