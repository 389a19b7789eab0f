#pragma once
// A service: its backends and the policy that spreads connections over them.

#include <memory>
#include <vector>

#include "sluice/backend.hpp"
#include "sluice/config.hpp"
#include "sluice/policy.hpp"

namespace sluice {

class Service {
 public:
  /// `addresses` holds one resolved address per backend, in config order.
  Service(ServiceConfig config, const std::vector<sockaddr_storage>& addresses);

  const ServiceConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  std::vector<Backend>& backends() { return backends_; }

  /// Picks a backend for a new connection, skipping those marked in `tried` (indexed like
  /// backends(); may be empty), and counts the dispatch. nullptr when none is eligible.
  Backend* dispatch(const std::vector<bool>& tried);

  /// A dispatched connection to `backend` is closed (or never connected).
  void release(Backend& backend);

 private:
  ServiceConfig config_;
  std::vector<Backend> backends_;
  std::unique_ptr<Policy> policy_;
  std::vector<BackendLoad> loads_;  // scratch for the policy, reused to avoid an allocation per pick
};

}  // namespace sluice
