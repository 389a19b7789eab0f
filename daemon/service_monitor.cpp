#include "sluice/service_monitor.hpp"

#include "sluice/sockaddr_text.hpp"

namespace sluice {

ServiceMonitor::ServiceMonitor(uv_loop_t* loop, Service& service) {
  const ServiceConfig& config = service.config();
  for (Backend& backend : service.backends()) {
    HealthChecker* checker = nullptr;
    if (config.health_check.enabled) {
      auto report = [&service, &backend](bool passed, std::string_view error) {
        service.record_health(backend, passed ? HealthEvidence::check_passed : HealthEvidence::check_failed,
                              error, uv_hrtime());
      };
      auto address = [&backend]() { return backend.has_address ? &backend.address : nullptr; };
      checker = checkers_
                    .emplace_back(std::make_unique<HealthChecker>(loop, config.health_check.interval,
                                                                  config.health_check.timeout, address, report))
                    .get();
    }
    if (numeric_address(backend.config.address)) continue;  // an IP literal never changes
    Resolver::Callbacks callbacks;
    callbacks.resolved = [&service, &backend, checker](const sockaddr_storage& address, bool first) {
      // A new address is checked at once rather than at the next interval.
      if (service.address_resolved(backend, address, first, uv_hrtime()) && checker != nullptr) {
        checker->check_now();
      }
    };
    callbacks.failed = [&service, &backend](std::string_view error, bool) {
      service.resolve_failed(backend, error, uv_hrtime());
    };
    resolvers_.push_back(
        std::make_unique<Resolver>(loop, backend.config.address, config.resolve_interval, std::move(callbacks)));
  }
}

void ServiceMonitor::start() {
  for (auto& resolver : resolvers_) resolver->start();
  for (auto& checker : checkers_) checker->start();
}

void ServiceMonitor::stop() {
  for (auto& resolver : resolvers_) resolver->stop();
  for (auto& checker : checkers_) checker->stop();
}

bool ServiceMonitor::finished() const {
  for (const auto& resolver : resolvers_) {
    if (!resolver->finished()) return false;
  }
  for (const auto& checker : checkers_) {
    if (!checker->finished()) return false;
  }
  return true;
}

}  // namespace sluice
