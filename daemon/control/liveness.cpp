// The liveness clock of /healthz: the control plane pings every worker; one that leaves a ping
// unanswered longer than admin.worker_timeout is reported.
#include "sluice/control/daemon.hpp"

namespace sluice {

void Daemon::ping_workers() {
  const std::uint64_t now = uv_hrtime();
  for (auto& worker : workers_) {
    std::uint64_t expected = 0;
    // One ping in flight per worker: its time is the start of the wait that /healthz measures.
    if (!worker->pinged_ns.compare_exchange_strong(expected, now)) continue;
    worker->thread->post([w = worker.get()] {
      w->answered_ns.store(uv_hrtime());
      w->pinged_ns.store(0);
    });
  }
}

std::string Daemon::liveness_problem() const {
  const std::uint64_t now = uv_hrtime();
  const auto limit_ns = static_cast<std::uint64_t>(worker_timeout_.count()) * 1'000'000;
  for (const auto& worker : workers_) {
    const std::uint64_t pinged = worker->pinged_ns.load();
    if (pinged != 0 && now > pinged && now - pinged > limit_ns) {
      return "worker " + std::to_string(worker->number) + " has not answered for " +
             std::to_string((now - pinged) / 1'000'000) + " ms";
    }
  }
  return {};
}

}  // namespace sluice
