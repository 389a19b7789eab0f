#pragma once
// The Prometheus view of the loop's stats (README "Metrics"). On the loop thread, take_snapshot()
// only copies the plain counters out (cheap: a scrape must not hold up a data loop); building
// prometheus-cpp's data model from the copy (strings, labels, buckets) happens on the control
// plane. The data path never sees prometheus-cpp.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "sluice/metrics/stats.hpp"
#include "sluice/metrics/text_format.hpp"

namespace sluice {

class Listener;
class Service;

/// What the families of one loop are made from: names and plain counters, copied on the loop.
struct ListenerSnapshot {
  std::string name;
  ListenerStats counters;
  const ListenerStats& stats() const { return counters; }
};
struct BackendSnapshot {
  std::string name;
  std::string node;
  std::uint32_t max_connections = 0;
  bool up = false;
  BackendStats stats;
};
struct BackendSetSnapshot {
  std::string name;
  std::size_t size = 0;
  std::uint64_t refused_total = 0;
  std::uint64_t resolve_failures_total = 0;
};
struct ServiceSnapshot {
  std::string name;
  ServiceStats counters;
  std::vector<BackendSnapshot> backends;
  std::vector<BackendSetSnapshot> sets;  // the monitor's: a follower's are not kept up to date
  const ServiceStats& stats() const { return counters; }
};
struct MetricsSnapshot {
  std::vector<ListenerSnapshot> listeners;
  std::vector<ServiceSnapshot> services;
};

/// On the loop thread that owns `listeners` and `services`: copies, nothing more.
MetricsSnapshot take_snapshot(std::span<const Listener* const> listeners, std::span<const Service* const> services);

/// Counters owned by the daemon itself (not by a listener or a service).
struct DaemonStats {
  std::uint64_t reloads_success = 0;  // config reloads applied
  std::uint64_t reloads_failure = 0;  // config reloads rejected (the old config stays)
  std::uint64_t generation = 1;       // the running config: 1 at start, +1 per applied reload
  bool last_reload_successful = true; // false from a rejected reload until the next applied one
};

/// Which families a collection makes. A backend's up/down state and the counters of its monitor
/// (resolve failures, state changes) are decided once per process, on the control plane, so each
/// worker collects the rest (`workers`) and the control plane these and its own (`control_plane`):
/// summed over workers they would count once per worker.
enum class MetricsPart {
  all,            // every family (one loop that is the whole process: the unit tests)
  workers,        // a worker's: listeners, services, backends' load and traffic
  control_plane,  // sluice_backend_up, _resolve_failures_total, _state_changes_total, sluice_backend_set_*,
                  // reloads, build info
};

/// Every `sluice_*` family of the README's "Metrics" table that `part` has, with the time integrals brought up to
/// `now_ns` (uv_hrtime() clock), from a snapshot taken at `now_ns`. Any thread.
std::vector<prometheus::MetricFamily> collect_metrics(const MetricsSnapshot& snapshot, const DaemonStats& daemon,
                                                      std::uint64_t now_ns, MetricsPart part = MetricsPart::all);

/// The same from the live objects: take_snapshot() then the above. On their loop thread.
std::vector<prometheus::MetricFamily> collect_metrics(std::span<const Listener* const> listeners,
                                                      std::span<const Service* const> services,
                                                      const DaemonStats& daemon,
                                                      std::uint64_t now_ns,
                                                      MetricsPart part = MetricsPart::all);

/// sluice_config_generation and sluice_config_last_reload_successful: the control plane's own
/// gauges (one process, not summed over workers).
std::vector<prometheus::MetricFamily> config_state_families(const DaemonStats& daemon);

/// sluice_worker_connections_accepted_total{worker}: how the kernel spread clients over the
/// workers' SO_REUSEPORT listeners (the one family that is per worker, not summed).
prometheus::MetricFamily worker_accepted_family(std::uint32_t worker_number, std::uint64_t accepted_total);

}  // namespace sluice
