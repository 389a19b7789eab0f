#include "sluice/service.hpp"

#include "sluice/sockaddr_text.hpp"

namespace sluice {

Service::Service(ServiceConfig config, const std::vector<sockaddr_storage>& addresses)
    : config_(std::move(config)),
      policy_(make_policy(config_.policy, config_.backends.size())),
      loads_(config_.backends.size()) {
  backends_.reserve(config_.backends.size());
  for (std::size_t i = 0; i < config_.backends.size(); ++i) {
    Backend backend;
    backend.config = config_.backends[i];
    backend.index = i;
    backend.address = addresses.at(i);
    backend.address_text = sockaddr_to_string(reinterpret_cast<const sockaddr*>(&backend.address));
    backends_.push_back(std::move(backend));
  }
}

Backend* Service::dispatch(const std::vector<bool>& tried) {
  for (std::size_t i = 0; i < backends_.size(); ++i) {
    loads_[i].weight = backends_[i].config.weight;
    loads_[i].active_connections = backends_[i].active_connections;
    loads_[i].eligible = tried.empty() || !tried[i];
  }
  auto chosen = policy_->pick(loads_);
  if (!chosen) return nullptr;
  Backend& backend = backends_[*chosen];
  ++backend.active_connections;
  ++backend.connections_total;
  return &backend;
}

void Service::release(Backend& backend) { --backend.active_connections; }

}  // namespace sluice
