#pragma once
// Least connections: fewest active connections per unit of weight; ties go round-robin so that
// equal idle backends share evenly instead of the first one taking every tie.

#include <cstddef>

#include "sluice/balancing/policy.hpp"

namespace sluice {

class LeastConnections final : public Policy {
 public:
  explicit LeastConnections(std::size_t backend_count);
  std::optional<std::size_t> pick(std::span<const BackendLoad> backends) override;

 private:
  std::size_t backend_count_;
  std::size_t next_tie_start_ = 0;  // ties are broken by scanning from here, then it moves past the winner
};

}  // namespace sluice
