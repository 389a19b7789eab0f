#include "sluice/balancing/least_connections.hpp"

#include <cstdint>

namespace sluice {

namespace {

// active / weight, compared exactly as a1 * w2 < a2 * w1. Both factors fit in 32 bits, so the products fit in
// 64. A weight of 0 (outside the contract) counts as 1 so that it cannot make every ratio compare equal.
bool fewer_per_weight(const BackendLoad& a, const BackendLoad& b) {
  const std::uint64_t weight_a = a.weight == 0 ? 1 : a.weight;
  const std::uint64_t weight_b = b.weight == 0 ? 1 : b.weight;
  return std::uint64_t{a.active_connections} * weight_b < std::uint64_t{b.active_connections} * weight_a;
}

}  // namespace

LeastConnections::LeastConnections(std::size_t backend_count) : backend_count_(backend_count) {}

// Scans cyclically from next_tie_start_ and keeps the first strictly smaller ratio, so among the backends tied
// at the minimum the first one at or after next_tie_start_ wins; the next scan starts just past the winner.
std::optional<std::size_t> LeastConnections::pick(std::span<const BackendLoad> backends) {
  const std::size_t count = backends.size();
  if (count != backend_count_) {
    backend_count_ = count;  // backends joined (a backend set): keep the tie cursor in range
    next_tie_start_ %= count == 0 ? 1 : count;
  }
  if (count == 0) return std::nullopt;

  std::optional<std::size_t> best;
  for (std::size_t step = 0; step < count; ++step) {
    const std::size_t i = (next_tie_start_ + step) % count;
    if (!backends[i].eligible) continue;
    if (!best || fewer_per_weight(backends[i], backends[*best])) best = i;
  }
  if (best) next_tie_start_ = (*best + 1) % count;
  return best;
}

}  // namespace sluice
