// A scrape: every worker copies its counters on its own loop at once; the control plane makes
// families of what arrives by the deadline, merges them and adds its own part and the process's.
#include "sluice/control/daemon.hpp"

#include <chrono>

#include "sluice/control/deadline.hpp"
#include "sluice/metrics/metrics_merge.hpp"
#include "sluice/metrics/process_metrics.hpp"
#include "sluice/metrics/scaling_metrics.hpp"

namespace sluice {

namespace {

prometheus::MetricFamily worker_up_family(const std::vector<std::pair<std::uint32_t, bool>>& answered) {
  prometheus::MetricFamily family{"sluice_worker_up",
                                  "1 when the worker's loop answered this scrape within admin.worker_timeout, "
                                  "0 when it is late (its numbers are then those of its last answer).",
                                  prometheus::MetricType::Gauge,
                                  {}};
  for (const auto& [number, up] : answered) {
    prometheus::ClientMetric sample;
    sample.label = {{"worker", std::to_string(number)}};
    sample.gauge.value = up ? 1 : 0;
    family.metric.push_back(std::move(sample));
  }
  return family;
}

}  // namespace

std::string Daemon::render_metrics() {
  // Every worker collects at once on its own loop; the control plane waits for each up to one
  // deadline. A late worker counts with its last answer, so no counter goes backwards.
  const std::uint64_t now = uv_hrtime();
  std::vector<std::future<Worker::MetricsCopy>> pending;
  if (!workers_finished_) {
    for (auto& worker : workers_) {
      pending.push_back(worker->thread->submit([worker = worker->worker.get()] { return worker->copy_metrics(); }));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + worker_timeout_;
  std::vector<prometheus::MetricFamily> families;
  std::vector<std::pair<std::uint32_t, bool>> answered;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    DataWorker& worker = *workers_[i];
    std::optional<Worker::MetricsCopy> fresh;
    if (i < pending.size()) fresh = get_by(pending[i], deadline);
    // Families are built here, on the control plane: the worker only copied its counters.
    if (fresh) worker.last_metrics = Worker::families_of(*fresh, worker.number, now);
    answered.emplace_back(worker.number, fresh.has_value());
    merge_metric_families(families, worker.last_metrics);
  }
  // The control plane's own: each backend's state and its monitor's counters, once per process.
  std::vector<const Service*> monitored;
  for (const auto& [name, monitor] : monitors_) monitored.push_back(&monitor->service());
  merge_metric_families(families, collect_metrics({}, monitored, stats_, now, MetricsPart::control_plane));
  for (auto& family : scaling_families(scaling_now())) families.push_back(std::move(family));
  families.push_back(worker_up_family(answered));
  for (auto& family : config_state_families(stats_)) families.push_back(std::move(family));
  for (auto& family : collect_process_metrics()) families.push_back(std::move(family));
  for (auto& family : collect_log_metrics()) families.push_back(std::move(family));
  return serialize_metrics(families);
}

}  // namespace sluice
