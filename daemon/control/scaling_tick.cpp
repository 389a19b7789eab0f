// The scaling signal on the control plane: the per-second collection of the workers' sums, the
// slots up now (from the monitors' decisions), and the assessments that /scaling and /metrics show.
#include <future>

#include "sluice/control/daemon.hpp"

namespace sluice {

void Daemon::scaling_tick() {
  if (scaling_.empty() || workers_finished_) return;
  // What arrived since the last tick (asked for then): no waiting here, a late copy is taken at a
  // later tick and meanwhile its worker counts with the one before.
  bool any_new = false;
  for (auto& worker : workers_) {
    auto& pending = worker->load_pending;
    if (!pending.valid() || pending.wait_for(std::chrono::seconds(0)) != std::future_status::ready) continue;
    try {
      worker->last_load = pending.get();
      any_new = true;
    } catch (const std::future_error&) {
      // The worker finished without running it: keep its last copy.
    }
  }
  if (any_new) {
    std::map<std::string, LoadSums> totals;
    for (const auto& worker : workers_) {
      for (const auto& [name, sums] : worker->last_load) totals[name] += sums;
    }
    scaling_.add(scaling_asked_ns_, totals);
  }
  scaling_asked_ns_ = uv_hrtime();
  for (auto& worker : workers_) {
    if (worker->load_pending.valid()) continue;  // still late: not asked twice
    worker->load_pending =
        worker->thread->submit([w = worker->worker.get()] { return w->copy_load_sums(); });
  }
}

scaling::Capacity Daemon::capacity_of(const std::string& service) const {
  scaling::Capacity capacity;
  auto it = monitors_.find(service);
  if (it == monitors_.end()) return capacity;
  for (const Backend& backend : it->second->service().backends()) {
    if (!backend.up) continue;
    ++capacity.backends_up;
    capacity.slots += backend.config.max_connections;
    if (backend.config.max_connections == 0) ++capacity.unlimited_up;
  }
  return capacity;
}

std::vector<scaling::Assessment> Daemon::scaling_now() const {
  return scaling_.assess(static_cast<std::uint32_t>(workers_.size()),
                         [this](const std::string& service) { return capacity_of(service); });
}

}  // namespace sluice
