#pragma once
// The process: a control plane and N data workers.
//
// The control plane is this thread's loop: signals, the config watcher and reload, the drain, and
// the admin endpoint's rendering (its sockets live on the admin thread). Each data worker is an
// Worker on a WorkerThread of its own, even with `workers: 1`; a worker only accepts, dispatches
// and moves bytes, and never waits for another thread. The control plane talks to the workers by
// tasks posted to their loops; every answer it waits for has a deadline (admin.worker_timeout),
// so one stuck worker cannot freeze /metrics or the others, and /healthz reports it.
//
// Backends are resolved and health-checked once for the process, on the control plane: one
// ServiceMonitor per service decides each backend's state from its own checks and from the client
// connects that every worker reports (ReportQueue), and posts each change to every worker.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>
#include <spdlog/common.h>
#include <uv.h>

#include "sluice/admin/admin_server.hpp"
#include "sluice/config/config.hpp"
#include "sluice/control/config_watcher.hpp"
#include "sluice/control/scaling_signal.hpp"
#include "sluice/discovery/dns_client.hpp"
#include "sluice/worker/worker.hpp"
#include "sluice/metrics/metrics.hpp"
#include "sluice/health/service_monitor.hpp"
#include "sluice/uv/handle.hpp"
#include "sluice/worker/worker_thread.hpp"

namespace sluice {

class Daemon {
 public:
  struct Options {
    std::string config_path;                              // reloaded on SIGHUP and when it changes
    std::optional<spdlog::level::level_enum> log_level;   // --log-level, kept across reloads
    // SLUICE_TEST_HOOKS=1: the admin endpoint also serves GET /test/stall-worker/N/MS (blocks
    // worker N's loop for MS milliseconds) and GET /test/fail-next-reload/N (worker N's part of
    // the next reload fails after it prepared). For the tests only.
    bool test_hooks = false;
  };

  Daemon(Config config, Options options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Binds and serves until a signal ends it. Returns the process exit code.
  int run();

 private:
  // One data worker: its thread, its worker (made, used and left on the thread), and the liveness
  // clock: the control plane pings every worker; a ping unanswered for longer than
  // admin.worker_timeout makes /healthz fail.
  struct DataWorker {
    std::uint32_t number = 0;
    std::unique_ptr<WorkerThread> thread;
    std::unique_ptr<Worker> worker;
    std::atomic<std::uint64_t> pinged_ns{0};    // the oldest ping not yet answered (0: none)
    std::atomic<std::uint64_t> answered_ns{0};  // when the worker last answered one
    std::vector<prometheus::MetricFamily> last_metrics;  // its last scrape (control thread only)
    // The scaling signal's copy of its sums: the last that arrived, and the one asked for.
    std::map<std::string, LoadSums> last_load;
    std::future<std::map<std::string, LoadSums>> load_pending;
  };

  bool start_workers(std::uint32_t count, std::string& why);
  /// Gives every service of `config` its monitor (at start, and when a reload commits): an
  /// unchanged service keeps its own; a changed or new one gets a new monitor that starts from
  /// the old one's state; the replaced and dropped ones stop at once.
  void update_monitors(const Config& config);
  bool start_admin();
  /// Queues `task` on every worker's loop; nobody waits.
  void post_to_workers(const std::function<void(Worker&)>& task);
  /// The sessions open on every worker that answers within `timeout` (for log lines).
  std::size_t session_count(std::chrono::milliseconds timeout);
  std::optional<AdminResponse> render_admin(std::string_view path);
  std::optional<AdminResponse> render_test_hook(std::string_view path);
  // The scaling signal (scaling_tick.cpp): every second, each worker's sums that arrived since
  // the last tick are added up and fed to the estimators, and the next copy is asked for; nobody
  // waits (a worker still late at the next tick counts with its last copy).
  void scaling_tick();
  scaling::Capacity capacity_of(const std::string& service) const;
  std::vector<scaling::Assessment> scaling_now() const;
  std::string render_metrics();
  /// Empty while every worker answers its pings in time, else which one does not.
  std::string liveness_problem() const;
  void ping_workers();
  void log_listeners() const;
  void log_summary() const;
  void on_signal(int signum);
  void begin_drain();
  void on_worker_drained();
  /// Opens the signal, timer and wake-up handles and starts the signals and the config watcher;
  /// libuv's error code (0: all open).
  int open_control_handles();
  void close_control_handles();

  // Live reload: a valid config replaces the running one; an invalid one changes nothing.
  void reload(std::string_view trigger);
  bool apply(Config next, std::string& why);
  /// `config` as workers 2..N bind it: a port 0 becomes the port worker 1 got for that listener.
  Config with_bound_ports(Config config, const std::vector<std::uint16_t>& ports) const;

  // admin.worker_timeout, fixed at start like the rest of `admin` (a reload does not change it):
  // read by the admin thread too, so never taken from config_, which a reload replaces.
  const std::chrono::milliseconds worker_timeout_;
  Config config_;
  Options options_;
  uv_loop_t loop_;
  int descriptor_ceiling_;
  std::vector<std::unique_ptr<DataWorker>> workers_;
  std::vector<std::string> bound_addresses_;  // worker 1's, by listener in config order
  bool workers_finished_ = false;
  ReportQueue reports_;  // client connects, from the workers to the monitors
  std::unique_ptr<DnsClient> dns_;  // the monitors' lookups; made at start from dns.*, which a reload keeps
  std::map<std::string, std::unique_ptr<ServiceMonitor>> monitors_;  // by service name
  ScalingSignal scaling_;
  std::uint64_t scaling_asked_ns_ = 0;  // when the copies being waited for were asked for
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ConfigWatcher> watcher_;
  DaemonStats stats_;
  Handle<uv_signal_t> sigterm_;
  Handle<uv_signal_t> sigint_;
  Handle<uv_timer_t> drain_timer_;
  Handle<uv_timer_t> ping_timer_;
  Handle<uv_async_t> drained_;  // a worker has drained
  Handle<uv_timer_t> scaling_timer_;    // every second while a service has `scaling`
  Handle<uv_timer_t> log_report_timer_;  // every second: how many repeated warnings were suppressed
  std::atomic<std::size_t> workers_draining_{0};
  std::uint32_t fail_next_reload_in_ = 0;  // a worker number, set by /test/fail-next-reload
  bool draining_ = false;
};

}  // namespace sluice
