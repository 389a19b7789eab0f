#pragma once
// The process's one monitor of a service, on the control plane's loop, whatever the number of
// workers. It owns the *authority* Service of the service (no sessions): it resolves each named
// backend and health-checks each backend once per interval, takes the client connects that every
// worker reports (HealthReport, through a ReportQueue), and so decides, logs and counts each
// change once. Every change is published as a BackendView, which the daemon posts to every worker
// (Worker::apply_view), whose follower Service applies it and moves its waiting clients.
// A backend set's name is resolved here too: each answer decides its members (Service::
// resolve_set); a new member gets a checker and its view (workers add it), a vanished one's
// checker stops and its draining view tells the workers to drain and then remove it.

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <uv.h>

#include "sluice/health/health_checker.hpp"
#include "sluice/discovery/resolver.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class ServiceMonitor {
 public:
  using Publish = std::function<void(const BackendView&)>;

  /// `previous`: the monitor of the service this one replaces (a reload), whose backends' state
  /// it starts from (Service::inherit_state); nullptr for a new service. `dns` (the process's)
  /// resolves the backends given by name; it must outlive the monitor's lookups (stop()).
  ServiceMonitor(uv_loop_t* loop, DnsClient& dns, const ServiceConfig& config, const ServiceMonitor* previous,
                 Publish publish);
  ServiceMonitor(const ServiceMonitor&) = delete;
  ServiceMonitor& operator=(const ServiceMonitor&) = delete;

  /// The state it decided (for /metrics and the next monitor).
  const Service& service() const { return *service_; }

  /// Publishes every backend's view (the workers' copies may be new: a reload), then resolves and
  /// checks; each backend's first check comes after a small random delay.
  void start();
  /// Stops resolving and checking at once; the object may then be destroyed (handles free
  /// themselves, lookups and probes in flight are cancelled).
  void stop();

  /// A worker's client connect; dropped when the backend is no longer in this service.
  void on_report(const HealthReport& report);

  /// Every address the last answer gave for a backend's name (it uses one of them); empty for an
  /// IP literal or a name not resolved yet.
  std::vector<sockaddr_storage> resolved_addresses(const Backend& backend) const;

 private:
  /// Publishes `backend`'s view when it differs from the last one published.
  void publish_if_changed(const Backend& backend);
  /// With checks enabled: a checker for `backend`'s entry (replacing a removed member's), not started.
  HealthChecker* make_checker(Backend& backend);
  /// Resolves the name of set `set` every resolve_interval; each answer decides its members.
  void follow_set(std::size_t set);

  uv_loop_t* loop_;
  std::unique_ptr<Service> service_;  // before the callbacks below, which refer to it
  Publish publish_;
  std::vector<BackendView> published_;                    // by backend index
  std::vector<std::unique_ptr<Resolver>> resolvers_;      // one per fixed backend's DNS name and per set
  std::vector<const Resolver*> resolver_of_;              // by fixed backend's index; nullptr for an IP literal
  std::vector<std::unique_ptr<HealthChecker>> checkers_;  // by backend index when checks are enabled
  bool stopped_ = false;
};

/// HealthReports from the workers' threads to the control plane's loop: a queue under a mutex and
/// one uv_async_t; the loop takes the whole queue at each wake-up.
class ReportQueue {
 public:
  using Deliver = std::function<void(const HealthReport&)>;

  explicit ReportQueue(Deliver deliver) : deliver_(std::move(deliver)) {}
  ReportQueue(const ReportQueue&) = delete;
  ReportQueue& operator=(const ReportQueue&) = delete;

  /// On the loop's thread; a libuv error code, 0 on success.
  int start(uv_loop_t* loop);
  /// Any thread. Dropped once close() was called.
  void push(HealthReport report);
  /// On the loop's thread: no more reports; the wake-up handle closes.
  void close();

 private:
  void deliver_all();

  Deliver deliver_;
  Handle<uv_async_t> wake_;  // sent to under mutex_, so close() cannot come in between
  std::mutex mutex_;
  std::vector<HealthReport> queue_;  // under mutex_
  bool open_ = false;                // under mutex_: started and not closed
};

}  // namespace sluice
