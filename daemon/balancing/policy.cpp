#include "sluice/balancing/policy.hpp"

#include "sluice/balancing/least_connections.hpp"
#include "sluice/balancing/round_robin.hpp"

namespace sluice {

std::unique_ptr<Policy> make_policy(PolicyKind kind, std::size_t backend_count) {
  switch (kind) {
    case PolicyKind::round_robin:
      return std::make_unique<RoundRobin>(backend_count);
    case PolicyKind::least_connections:
      return std::make_unique<LeastConnections>(backend_count);
  }
  return nullptr;  // unreachable: every PolicyKind is handled above
}

std::string_view to_string(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::round_robin:
      return "round_robin";
    case PolicyKind::least_connections:
      return "least_connections";
  }
  return "unknown";
}

}  // namespace sluice
