#include "sluice/balancing/round_robin.hpp"

namespace sluice {

RoundRobin::RoundRobin(std::size_t backend_count) : current_weight_(backend_count, 0) {}

// Smooth weighted round-robin, as nginx does it: every eligible backend earns its weight in credit, the
// richest one is chosen and pays back the total earned in this round. Over sum(weights) picks each backend is
// chosen exactly weight times, spread out instead of in bursts. Ineligible backends neither earn nor pay.
std::optional<std::size_t> RoundRobin::pick(std::span<const BackendLoad> backends) {
  // Backends join (a backend set's new members): they start with no credit, the others keep theirs.
  if (backends.size() != current_weight_.size()) current_weight_.resize(backends.size(), 0);

  std::optional<std::size_t> best;
  std::int64_t total_weight = 0;
  for (std::size_t i = 0; i < backends.size(); ++i) {
    if (!backends[i].eligible) continue;
    const std::int64_t weight = backends[i].weight;
    current_weight_[i] += weight;
    total_weight += weight;
    if (!best || current_weight_[i] > current_weight_[*best]) best = i;  // strict: the first index wins ties
  }
  if (best) current_weight_[*best] -= total_weight;
  return best;
}

}  // namespace sluice
