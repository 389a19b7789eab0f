// What the admin thread cannot answer itself, rendered on the control plane: /metrics (scrape.cpp),
// /backends, /scaling (scaling_tick.cpp has its data), and the test hooks.
#include "sluice/control/daemon.hpp"

#include <charconv>
#include <chrono>
#include <thread>

#include "sluice/admin/scaling_json.hpp"
#include "sluice/control/deadline.hpp"

namespace sluice {

namespace {

// The numbers of a test hook path: "/test/stall-worker/2/3000" with prefix "/test/stall-worker/"
// -> {2, 3000}; empty when the rest is not numbers separated by '/'.
std::vector<std::uint32_t> hook_numbers(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return {};
  path.remove_prefix(prefix.size());
  std::vector<std::uint32_t> numbers;
  while (!path.empty()) {
    const auto slash = std::min(path.find('/'), path.size());
    std::uint32_t value = 0;
    const auto parsed = std::from_chars(path.data(), path.data() + slash, value);
    if (parsed.ec != std::errc{} || parsed.ptr != path.data() + slash) return {};
    numbers.push_back(value);
    path.remove_prefix(std::min(slash + 1, path.size()));
  }
  return numbers;
}

}  // namespace

std::optional<AdminResponse> Daemon::render_admin(std::string_view path) {
  if (path == "/metrics") return AdminResponse{200, std::string(kMetricsContentType), render_metrics()};
  if (path == "/backends") {
    // LoopResources 1's view: the monitors' state of every backend (each worker has it) and worker 1's
    // load; /metrics has the sums.
    if (workers_finished_ || workers_.empty()) return AdminResponse{503, "text/plain; charset=utf-8", "stopping\n"};
    const double unix_now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto json = workers_.front()->thread->submit(
        [worker = workers_.front()->worker.get(), unix_now] { return worker->render_backends_json(uv_hrtime(), unix_now); });
    if (auto body = get_by(json, std::chrono::steady_clock::now() + worker_timeout_))
      return AdminResponse{200, "application/json", std::move(*body)};
    return AdminResponse{503, "text/plain; charset=utf-8", "worker 1 did not answer in time\n"};
  }
  // The control plane's own: no worker is asked (their sums arrive every second anyway).
  if (path == "/scaling") return AdminResponse{200, "application/json", render_scaling_json(scaling_now())};
  if (options_.test_hooks) return render_test_hook(path);
  return std::nullopt;
}

std::optional<AdminResponse> Daemon::render_test_hook(std::string_view path) {
  auto valid_worker = [&](std::uint32_t number) { return number >= 1 && number <= workers_.size(); };
  if (const auto stall = hook_numbers(path, "/test/stall-worker/"); stall.size() == 2 && valid_worker(stall[0])) {
    workers_[stall[0] - 1]->thread->post(
        [ms = stall[1]] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
    return AdminResponse{200, "text/plain; charset=utf-8", "stalling\n"};
  }
  if (const auto fail = hook_numbers(path, "/test/fail-next-reload/"); fail.size() == 1 && valid_worker(fail[0])) {
    fail_next_reload_in_ = fail[0];
    return AdminResponse{200, "text/plain; charset=utf-8", "armed\n"};
  }
  return std::nullopt;
}

}  // namespace sluice
