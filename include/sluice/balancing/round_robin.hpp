#pragma once
// Smooth weighted round-robin: weights 5,1,1 give a a b a c a a (never a burst of five).

#include <cstdint>
#include <vector>

#include "sluice/balancing/policy.hpp"

namespace sluice {

class RoundRobin final : public Policy {
 public:
  explicit RoundRobin(std::size_t backend_count);
  std::optional<std::size_t> pick(std::span<const BackendLoad> backends) override;

 private:
  std::vector<std::int64_t> current_weight_;  // one per backend, the "smooth" credit
};

}  // namespace sluice
