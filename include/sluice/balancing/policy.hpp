#pragma once
// Balancing policies: pure choice of one backend among candidates. No sockets, no queues.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "sluice/config/config.hpp"

namespace sluice {

/// What a policy may look at for one backend.
struct BackendLoad {
  std::uint32_t weight = 1;              // >= 1
  std::uint32_t active_connections = 0;  // connections the backend holds now
  bool eligible = true;                  // up, has a free slot, not already tried by this session
};

class Policy {
 public:
  virtual ~Policy() = default;

  /// Index of the chosen backend among the eligible ones, or nullopt when none is eligible.
  /// `backends` keeps its order at every call; it may grow (a backend set's new members).
  virtual std::optional<std::size_t> pick(std::span<const BackendLoad> backends) = 0;
};

std::unique_ptr<Policy> make_policy(PolicyKind kind, std::size_t backend_count);

std::string_view to_string(PolicyKind kind);

}  // namespace sluice
