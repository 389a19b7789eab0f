#pragma once
// Keeps a Service's view of its backends current: re-resolves host names and runs the active
// health checks, feeding every outcome to the Service. The libuv side of backend state.

#include <memory>
#include <vector>

#include <uv.h>

#include "sluice/health_checker.hpp"
#include "sluice/resolver.hpp"
#include "sluice/service.hpp"

namespace sluice {

class ServiceMonitor {
 public:
  ServiceMonitor(uv_loop_t* loop, Service& service);
  ServiceMonitor(const ServiceMonitor&) = delete;
  ServiceMonitor& operator=(const ServiceMonitor&) = delete;

  void start();
  /// Stops resolving and checking.
  void stop();
  /// Stopped with every handle closed and no lookup in flight: the object may be destroyed.
  bool finished() const;

 private:
  std::vector<std::unique_ptr<Resolver>> resolvers_;      // one per backend with a DNS name
  std::vector<std::unique_ptr<HealthChecker>> checkers_;  // one per backend when checks are enabled
};

}  // namespace sluice
