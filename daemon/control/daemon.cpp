// The process's start and stop: the workers, the admin endpoint, the start-up log lines.
// The rest of Daemon: drain.cpp, reload.cpp, liveness.cpp, admin_routes.cpp, scrape.cpp.
#include "sluice/control/daemon.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "sluice/control/background_thread.hpp"
#include "sluice/control/deadline.hpp"
#include "sluice/control/service_manager.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/log/logging.hpp"

namespace sluice {

namespace {

// Descriptors kept free of clients: backend sockets of admitted clients, health checks, the admin.
constexpr int kDescriptorReserve = 32;
// How often the control plane pings every worker (the liveness clock of /healthz).
constexpr std::uint64_t kPingIntervalMs = 200;
// How often the scaling signal copies the workers' sums (its estimates' resolution).
constexpr std::uint64_t kScalingTickMs = 1000;
// How often the counts of suppressed repeated warnings are written (the limiter's window).
constexpr std::uint64_t kLogReportIntervalMs = 1000;

// Raises the soft RLIMIT_NOFILE to the hard one (each session needs two descriptors) and returns it.
int raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 30));
}

std::string health_check_summary(const HealthCheckConfig& check) {
  if (!check.enabled) return "off";
  return "interval_ms=" + std::to_string(check.interval.count()) + ",timeout_ms=" +
         std::to_string(check.timeout.count()) + ",rise=" + std::to_string(check.rise) +
         ",fall=" + std::to_string(check.fall) +
         (check.http ? ",http_path=" + check.http->path + ",http_expect=" + check.http->expect.to_string() : "");
}

// `workers: auto` (0) is one per core the process may run on.
std::uint32_t worker_count(std::uint32_t configured) {
  if (configured != 0) return configured;
  return static_cast<std::uint32_t>(std::clamp<unsigned>(uv_available_parallelism(), 1, Config::kMaxWorkers));
}

}  // namespace

Daemon::Daemon(Config config, Options options)
    : worker_timeout_(config.admin.worker_timeout),
      config_(std::move(config)),
      options_(std::move(options)),
      descriptor_ceiling_(raise_descriptor_limit() - kDescriptorReserve),
      reports_([this](const HealthReport& report) {
        if (auto it = monitors_.find(report.service); it != monitors_.end()) it->second->on_report(report);
      }) {
  // Without a loop nothing can run; run() then fails on its first handle.
  if (const int rc = uv_loop_init(&loop_); rc != 0) spdlog::error("cannot create the control loop: {}", uv_err_name(rc));
}

Daemon::~Daemon() {
  for (auto& worker : workers_) worker->thread->finish();
  workers_.clear();  // workers after their loops ended, then the threads
  watcher_.reset();
  if (const int rc = uv_loop_close(&loop_); rc != 0) spdlog::warn("control loop closed busy: {}", uv_err_name(rc));
}

int Daemon::run() {
  // A peer that closes while we write must not kill the process; the write reports EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);

  std::string why;
  if (const int rc = open_control_handles(); rc != 0) {
    why = std::string("cannot set up the control loop: ") + uv_err_name(rc);
  } else if (const int rc = reports_.start(&loop_); rc != 0) {
    why = std::string("cannot start the queue of health reports: ") + uv_err_name(rc);
  }
  const bool ok = why.empty() && start_workers(worker_count(config_.workers), why) && start_admin();
  if (ok) {
    // After the workers started (threads inherit the policy): only this thread yields to them.
    if (const int error = run_as_background_thread(); error != 0) {
      spdlog::warn("the control plane runs at the workers' priority: SCHED_BATCH refused ({})", std::strerror(error));
    }
    dns_ = std::make_unique<DnsClient>(&loop_, config_.dns);
    log_listeners();
    log_summary();
    update_monitors(config_);
    scaling_.configure(config_);
    const int scaling = uv_timer_start(
        scaling_timer_.get(), [](uv_timer_t* timer) { owner<Daemon>(timer)->scaling_tick(); }, kScalingTickMs,
        kScalingTickMs);
    if (scaling != 0) spdlog::error("scaling signal not started: {}; /scaling stays warming up", uv_err_name(scaling));
    const int rc = uv_timer_start(
        ping_timer_.get(), [](uv_timer_t* timer) { owner<Daemon>(timer)->ping_workers(); }, 0, kPingIntervalMs);
    if (rc != 0) spdlog::error("liveness pings not started: {}; /healthz cannot see a stuck worker", uv_err_name(rc));
    const int reports = uv_timer_start(
        log_report_timer_.get(), [](uv_timer_t*) { report_suppressed_log_lines(); }, kLogReportIntervalMs,
        kLogReportIntervalMs);
    if (reports != 0) spdlog::error("suppressed log lines reported only at exit: {}", uv_err_name(reports));
    notify_service_manager("READY=1");  // listeners bound, admin up, workers running (Type=notify)
  } else {
    if (!why.empty()) spdlog::error("start: {}", why);
    close_control_handles();
  }
  // Non-zero only after uv_stop(), which nothing calls: every handle is closed by then.
  if (uv_run(&loop_, UV_RUN_DEFAULT) != 0) spdlog::warn("control loop stopped with handles still open");
  for (auto& worker : workers_) worker->thread->finish();
  if (ok) spdlog::info("stopped");
  return ok ? 0 : 1;
}

int Daemon::open_control_handles() {
  watcher_ = std::make_unique<ConfigWatcher>(&loop_, options_.config_path,
                                             [this](std::string_view trigger) { reload(trigger); });
  auto on_signal = [](uv_signal_t* handle, int signum) { owner<Daemon>(handle)->on_signal(signum); };
  auto on_drained = [](uv_async_t* async) { owner<Daemon>(async)->on_worker_drained(); };
  // Signals first: a SIGHUP or SIGTERM sent as soon as the daemon announces itself is handled,
  // not fatal.
  int rc = 0;
  if ((rc = sigterm_.init(&loop_, this, uv_signal_init)) != 0 || (rc = sigint_.init(&loop_, this, uv_signal_init)) != 0 ||
      (rc = drain_timer_.init(&loop_, this, uv_timer_init)) != 0 ||
      (rc = ping_timer_.init(&loop_, this, uv_timer_init)) != 0 ||
      (rc = log_report_timer_.init(&loop_, this, uv_timer_init)) != 0 ||
      (rc = scaling_timer_.init(&loop_, this, uv_timer_init)) != 0 ||
      (rc = drained_.init(&loop_, this, uv_async_init, on_drained)) != 0 ||
      (rc = uv_signal_start(sigterm_.get(), on_signal, SIGTERM)) != 0 ||
      (rc = uv_signal_start(sigint_.get(), on_signal, SIGINT)) != 0) {
    return rc;
  }
  watcher_->start();
  return 0;
}

bool Daemon::start_workers(std::uint32_t count, std::string& why) {
  // LoopResources 1 binds first; a listener on port 0 then has a port for the others to share.
  const bool reuse_port = count > 1;
  Config shared = config_;
  for (std::uint32_t number = 1; number <= count; ++number) {
    auto worker = std::make_unique<DataWorker>();
    worker->number = number;
    worker->thread = std::make_unique<WorkerThread>(("sluice-w" + std::to_string(number)).c_str());
    DataWorker& w = *worker;
    workers_.push_back(std::move(worker));
    const bool started = w.thread->call([&] {
      w.worker = std::make_unique<Worker>(w.thread->loop(), number, descriptor_ceiling_, reuse_port,
                                          [this](HealthReport report) { reports_.push(std::move(report)); });
      return w.worker->start(shared, why);
    });
    if (!started) {
      if (count > 1) why = "worker " + std::to_string(number) + ": " + why;
      return false;
    }
    if (number == 1) {
      bound_addresses_ = w.thread->call([&] { return w.worker->bound_addresses(); });
      shared = with_bound_ports(config_, w.thread->call([&] { return w.worker->bound_ports(); }));
    }
  }
  return true;
}

Config Daemon::with_bound_ports(Config config, const std::vector<std::uint16_t>& ports) const {
  for (std::size_t i = 0; i < config.listeners.size() && i < ports.size(); ++i) {
    if (config.listeners[i].bind.port == 0) config.listeners[i].bind.port = ports[i];
  }
  return config;
}

void Daemon::post_to_workers(const std::function<void(Worker&)>& task) {
  if (workers_finished_) return;
  for (auto& worker : workers_) {
    if (worker->worker) worker->thread->post([worker = worker->worker.get(), task] { task(*worker); });
  }
}

std::size_t Daemon::session_count(std::chrono::milliseconds timeout) {
  if (workers_finished_) return 0;
  std::vector<std::future<std::size_t>> counts;
  for (auto& worker : workers_)
    counts.push_back(worker->thread->submit([worker = worker->worker.get()] { return worker->session_count(); }));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t total = 0;
  for (auto& count : counts) total += get_by(count, deadline).value_or(0);
  return total;
}

bool Daemon::start_admin() {
  if (!config_.admin.bind) return true;
  // The admin thread answers 503 to a request the control plane has not rendered in time; a
  // render waits for the workers up to worker_timeout, so it gets a little longer.
  admin_ = std::make_unique<AdminServer>(
      &loop_, [this](std::string_view path) { return render_admin(path); },
      worker_timeout_ + std::chrono::seconds(1));
  // Read on the admin thread: only atomics and the timeout, fixed from start.
  admin_->set_liveness([this] { return liveness_problem(); });
  std::string why;
  if (!admin_->start(*config_.admin.bind, why)) {
    spdlog::error("admin: {}", why);
    return false;
  }
  spdlog::info("admin listening address={} paths=/metrics,/healthz,/backends,/scaling", admin_->bound_address());
  return true;
}

void Daemon::log_listeners() const {
  for (std::size_t i = 0; i < config_.listeners.size() && i < bound_addresses_.size(); ++i) {
    const ListenerConfig& listener = config_.listeners[i];
    log_event(spdlog::level::info, "listening",
              {{"listener", listener.name},
               {"address", bound_addresses_[i]},
               {"service", listener.service},
               {"workers", workers_.size()}});
    if (listener.accept_proxy && listener.accept_proxy_from.empty()) {
      log_event(spdlog::level::warn, "accept_proxy_untrusted",
                {{"listener", listener.name},
                 {"why", "no accept_proxy_from: any peer that reaches it may name any client address"}});
    }
  }
}

void Daemon::log_summary() const {
  for (const ServiceConfig& service : config_.services) {
    log_event(spdlog::level::info, "service",
              {{"service", service.name},
               {"policy", to_string(service.policy)},
               {"backends", service.backends.size()},
               {"connect_timeout_ms", service.connect_timeout.count()},
               {"retries", service.retries},
               {"queue_mode", service.queue.mode == QueueMode::shared ? "shared" : "per_backend"},
               {"queue_max_length", service.queue.max_length},
               {"queue_timeout_ms", service.queue.timeout.count()},
               {"resolve_interval_ms", service.resolve_interval.count()},
               {"health_check", health_check_summary(service.health_check)}});
    for (const BackendConfig& backend : service.backends) {
      log_event(spdlog::level::info, "backend",
                {{"service", service.name},
                 {"backend", backend.name},
                 {"address", backend.address.to_string()},
                 {"node", LogValue::text_or_null(backend.node)},
                 {"weight", backend.weight},
                 {"max_connections", backend.max_connections}});
    }
    for (const BackendSetConfig& set : service.backend_sets) {
      log_event(spdlog::level::info, "backend_set",
                {{"service", service.name},
                 {"set", set.name},
                 {"address", set.address.to_string()},
                 {"max_backends", set.max_backends},
                 {"node", LogValue::text_or_null(set.node)},
                 {"weight", set.weight},
                 {"max_connections", set.max_connections}});
    }
  }
}

}  // namespace sluice
