#include "sluice/health/service_monitor.hpp"

#include <algorithm>
#include <random>

#include "sluice/health/http_check.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace sluice {

namespace {

// The first check of a backend comes after a random delay of up to a tenth of its interval (at
// most 1 s), so that the backends of a start or a reload are not all probed in the same instant.
Millis first_check_delay(Millis interval) {
  static std::minstd_rand random{std::random_device{}()};  // the control plane's thread only
  std::uniform_int_distribution<Millis::rep> spread(0, std::min(interval / 10, Millis(1000)).count());
  return Millis(spread(random));
}

// The one address a backend uses of its name's answer: the current one while the name still has
// it (a name with several records does not make the backend hop), else the first.
const sockaddr_storage& chosen_address(const Backend& backend, const std::vector<sockaddr_storage>& addresses) {
  if (backend.has_address) {
    for (const sockaddr_storage& address : addresses) {
      if (same_address(address, backend.address)) return address;
    }
  }
  return addresses.front();
}

}  // namespace

ServiceMonitor::ServiceMonitor(uv_loop_t* loop, DnsClient& dns, const ServiceConfig& config,
                               const ServiceMonitor* previous, Publish publish)
    : loop_(loop), service_(std::make_unique<Service>(config, uv_hrtime())), publish_(std::move(publish)) {
  if (previous != nullptr) service_->inherit_state(*previous->service_);
  Service& service = *service_;
  for (Backend& backend : service.backends()) {
    published_.push_back(service.view_of(backend));
    HealthChecker* checker = make_checker(backend);
    resolver_of_.push_back(nullptr);
    // An IP literal never changes; a set's members follow their set's name (follow_set).
    if (!backend.set.empty() || numeric_address(backend.config.address)) continue;
    Resolver::Callbacks callbacks;
    callbacks.resolved = [this, &backend, checker](const std::vector<sockaddr_storage>& addresses, bool first) {
      // A new address is checked at once rather than at the next interval.
      const sockaddr_storage& address = chosen_address(backend, addresses);
      if (service_->address_resolved(backend, address, first, uv_hrtime()) && checker != nullptr) {
        checker->check_now();
      }
      publish_if_changed(backend);
    };
    callbacks.failed = [this, &backend](std::string_view error, bool) {
      service_->resolve_failed(backend, error, uv_hrtime());
      publish_if_changed(backend);
    };
    resolver_of_.back() = resolvers_
                              .emplace_back(std::make_unique<Resolver>(loop, dns, backend.config.address,
                                                                       config.resolve_interval, std::move(callbacks)))
                              .get();
  }
  for (std::size_t set = 0; set < service.sets().size(); ++set) {
    Resolver::Callbacks callbacks;
    callbacks.resolved = [this, set](const std::vector<sockaddr_storage>& addresses, bool) {
      const Service::SetChange change = service_->resolve_set(set, addresses, uv_hrtime());
      for (Backend* member : change.added) {
        publish_if_changed(*member);
        if (HealthChecker* checker = make_checker(*member)) checker->check_now();
      }
      for (Backend* member : change.drained) {
        if (member->index < checkers_.size()) checkers_[member->index].reset();  // stops it
        publish_if_changed(*member);
      }
    };
    // The members are kept: a name that blinks (NXDOMAIN, a timeout) does not drain a whole pool.
    callbacks.failed = [this, set](std::string_view error, bool) { service_->set_resolve_failed(set, error); };
    resolvers_.push_back(std::make_unique<Resolver>(loop, dns, service.sets()[set].config.address,
                                                    config.resolve_interval, std::move(callbacks)));
  }
}

HealthChecker* ServiceMonitor::make_checker(Backend& backend) {
  const HealthCheckConfig& check = service_->config().health_check;
  if (!check.enabled) return nullptr;
  if (checkers_.size() <= backend.index) checkers_.resize(backend.index + 1);
  auto report = [this, &backend](bool passed, std::string_view error) {
    service_->record_health(backend, passed ? HealthEvidence::check_passed : HealthEvidence::check_failed, error,
                            uv_hrtime());
    publish_if_changed(backend);
  };
  auto address = [&backend]() { return backend.has_address ? &backend.address : nullptr; };
  std::optional<HealthChecker::HttpCheck> http;
  if (const auto& http_check = check.http) {
    // A backend that expects a PROXY header gets one without addresses (LOCAL): a check is nobody's.
    std::string request{proxy_protocol::local_header(backend.config.send_proxy)};
    request += http_check_request(*http_check, backend.config.address);
    http = HealthChecker::HttpCheck{std::move(request), http_check->expect};
  }
  checkers_[backend.index] =
      std::make_unique<HealthChecker>(loop_, check.interval, check.timeout, address, report, std::move(http));
  return checkers_[backend.index].get();
}

std::vector<sockaddr_storage> ServiceMonitor::resolved_addresses(const Backend& backend) const {
  const Resolver* resolver = backend.index < resolver_of_.size() ? resolver_of_[backend.index] : nullptr;
  return resolver != nullptr ? resolver->addresses() : std::vector<sockaddr_storage>{};
}

void ServiceMonitor::start() {
  for (const BackendView& view : published_) publish_(view);
  for (auto& resolver : resolvers_) resolver->start();
  for (auto& checker : checkers_) {
    if (checker) checker->start(first_check_delay(service_->config().health_check.interval));
  }
}

void ServiceMonitor::stop() {
  stopped_ = true;
  for (auto& resolver : resolvers_) resolver->stop();
  for (auto& checker : checkers_) {
    if (checker) checker->stop();
  }
}

void ServiceMonitor::on_report(const HealthReport& report) {
  if (stopped_) return;
  Backend* backend = service_->find_backend(report.backend, report.configured);
  if (backend == nullptr) return;
  service_->record_health(*backend, report.passed ? HealthEvidence::connect_passed : HealthEvidence::connect_failed,
                          report.detail, uv_hrtime());
  publish_if_changed(*backend);
}

void ServiceMonitor::publish_if_changed(const Backend& backend) {
  BackendView view = service_->view_of(backend);
  if (published_.size() <= backend.index) published_.resize(backend.index + 1);
  BackendView& last = published_[backend.index];
  if (view == last) return;
  last = view;
  publish_(last);
}

// --- ReportQueue ------------------------------------------------------------------------------

int ReportQueue::start(uv_loop_t* loop) {
  const int rc =
      wake_.init(loop, this, uv_async_init, [](uv_async_t* async) { owner<ReportQueue>(async)->deliver_all(); });
  if (rc != 0) return rc;
  std::lock_guard lock(mutex_);
  open_ = true;
  return 0;
}

void ReportQueue::push(HealthReport report) {
  std::lock_guard lock(mutex_);  // held across the send, so that close() cannot come in between
  if (!open_) return;
  queue_.push_back(std::move(report));
  if (queue_.size() > 1) return;  // a wake-up is already on its way for the first one
  const int rc = uv_async_send(wake_.get());
  if (rc != 0) queue_.clear();  // cannot happen on an open handle; never leave a queue no one takes
}

void ReportQueue::deliver_all() {
  std::vector<HealthReport> reports;
  {
    std::lock_guard lock(mutex_);
    reports.swap(queue_);
  }
  for (const HealthReport& report : reports) deliver_(report);
}

void ReportQueue::close() {
  {
    std::lock_guard lock(mutex_);
    if (!open_) return;
    open_ = false;
    queue_.clear();
  }
  wake_.close();
}

}  // namespace sluice
