#include "sluice/daemon.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "sluice/access_log.hpp"
#include "sluice/metrics_merge.hpp"
#include "sluice/process_metrics.hpp"
#include "sluice/sockaddr_text.hpp"

namespace sluice {

namespace {

// Descriptors kept free of clients: backend sockets of admitted clients, health checks, the admin.
constexpr int kDescriptorReserve = 32;

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
         ",fall=" + std::to_string(check.fall);
}

// `workers: auto` (0) is one per core the process may run on.
std::uint32_t worker_count(std::uint32_t configured) {
  if (configured != 0) return configured;
  return static_cast<std::uint32_t>(std::clamp<unsigned>(uv_available_parallelism(), 1, Config::kMaxWorkers));
}

}  // namespace

Daemon::Daemon(Config config, Options options)
    : config_(std::move(config)), options_(std::move(options)), descriptor_ceiling_(raise_descriptor_limit() - kDescriptorReserve) {
  uv_loop_init(&loop_);
}

Daemon::~Daemon() {
  for (auto& remote : remote_workers_) remote.thread->finish();
  remote_workers_.clear();  // engines after their loops ended, then the threads
  watcher_.reset();
  engine_.reset();
  uv_loop_close(&loop_);
}

int Daemon::run() {
  // A peer that closes while we write must not kill the process; the write reports EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);

  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_timer_init(&loop_, &drain_timer_);
  uv_async_init(&loop_, &drained_, [](uv_async_t* async) { static_cast<Daemon*>(async->data)->on_engine_drained(); });
  sigterm_.data = sigint_.data = drain_timer_.data = drained_.data = this;
  watcher_ = std::make_unique<ConfigWatcher>(&loop_, options_.config_path,
                                             [this](std::string_view trigger) { reload(trigger); });

  // Signals first: a SIGHUP or SIGTERM sent as soon as the daemon announces itself is handled,
  // not fatal.
  auto on_signal = [](uv_signal_t* handle, int signum) { static_cast<Daemon*>(handle->data)->on_signal(signum); };
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  watcher_->start();

  std::string why;
  const bool ok = start_workers(worker_count(config_.workers), why) && start_admin();
  if (ok) {
    log_listeners();
    log_summary();
    for_each_engine([](Engine& engine) { engine.start_monitors(); });
  } else {
    if (!why.empty()) spdlog::error("{}", why);
    close_control_handles();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& remote : remote_workers_) remote.thread->finish();
  if (ok) spdlog::info("stopped");
  return ok ? 0 : 1;
}

bool Daemon::start_workers(std::uint32_t count, std::string& why) {
  // Worker 1 binds first; a listener on port 0 then has a port for the others to share.
  const bool reuse_port = count > 1;
  engine_ = std::make_unique<Engine>(&loop_, 1, descriptor_ceiling_, reuse_port);
  if (!engine_->start(config_, why)) return false;
  const Config shared = with_bound_ports(config_);
  for (std::uint32_t index = 2; index <= count; ++index) {
    RemoteWorker remote;
    remote.thread = std::make_unique<WorkerThread>(("sluice-w" + std::to_string(index)).c_str());
    bool started = remote.thread->call([&] {
      remote.engine = std::make_unique<Engine>(remote.thread->loop(), index, descriptor_ceiling_, reuse_port);
      return remote.engine->start(shared, why);
    });
    remote_workers_.push_back(std::move(remote));
    if (!started) {
      why = "worker " + std::to_string(index) + ": " + why;
      return false;
    }
  }
  return true;
}

Config Daemon::with_bound_ports(Config config) const {
  const std::vector<std::uint16_t> ports = engine_->bound_ports();
  for (std::size_t i = 0; i < config.listeners.size() && i < ports.size(); ++i) {
    if (config.listeners[i].bind.port == 0) config.listeners[i].bind.port = ports[i];
  }
  return config;
}

void Daemon::for_each_engine(const std::function<void(Engine&)>& task) {
  if (engine_) task(*engine_);
  if (remote_workers_finished_) return;
  for (auto& remote : remote_workers_) {
    if (remote.engine) remote.thread->call([&] { task(*remote.engine); });
  }
}

std::size_t Daemon::session_count() {
  std::size_t count = 0;
  for_each_engine([&](Engine& engine) { count += engine.session_count(); });
  return count;
}

bool Daemon::start_admin() {
  if (!config_.admin.bind) return true;
  admin_ = std::make_unique<AdminServer>(&loop_, [this](std::string_view path) { return render_admin(path); });
  std::string why;
  if (!admin_->start(*config_.admin.bind, why)) {
    spdlog::error("admin: {}", why);
    return false;
  }
  spdlog::info("admin listening address={} paths=/metrics,/healthz,/backends", admin_->bound_address());
  return true;
}

std::optional<AdminResponse> Daemon::render_admin(std::string_view path) {
  const std::uint64_t now = uv_hrtime();
  if (path == "/backends") {
    // Worker 1's view: every worker checks the same backends; /metrics has the sums.
    const double unix_now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return AdminResponse{200, "application/json", engine_->render_backends_json(now, unix_now)};
  }
  if (path != "/metrics") return std::nullopt;
  auto families = engine_->collect_metrics(stats_, now);
  if (!remote_workers_finished_) {
    for (auto& remote : remote_workers_) {
      merge_metric_families(families,
                            remote.thread->call([&] { return remote.engine->collect_metrics(DaemonStats{}, now); }));
    }
  }
  for (auto& family : collect_process_metrics()) families.push_back(std::move(family));
  return AdminResponse{200, std::string(kMetricsContentType), serialize_metrics(families)};
}

void Daemon::log_listeners() const {
  const std::vector<std::string> addresses = engine_->bound_addresses();
  for (std::size_t i = 0; i < config_.listeners.size() && i < addresses.size(); ++i) {
    const ListenerConfig& listener = config_.listeners[i];
    spdlog::info("listening listener={} address={} service={} workers={}", listener.name, addresses[i],
                 listener.service, 1 + remote_workers_.size());
  }
}

void Daemon::log_summary() const {
  for (const ServiceConfig& service : config_.services) {
    spdlog::info(
        "service {} policy={} backends={} connect_timeout_ms={} retries={} queue_mode={} "
        "queue_max_length={} queue_timeout_ms={} resolve_interval_ms={} health_check={}",
        service.name, to_string(service.policy), service.backends.size(), service.connect_timeout.count(),
        service.retries, service.queue.mode == QueueMode::shared ? "shared" : "per_backend",
        service.queue.max_length, service.queue.timeout.count(), service.resolve_interval.count(),
        health_check_summary(service.health_check));
    for (const BackendConfig& backend : service.backends) {
      spdlog::info("  backend {} address={} node={} weight={} max_connections={}", backend.name,
                   backend.address.to_string(), backend.node.empty() ? "-" : backend.node, backend.weight,
                   backend.max_connections);
    }
  }
}

void Daemon::on_signal(int signum) {
  if (draining_) {
    spdlog::warn("signal {} during drain: closing {} sessions now", signum, session_count());
    for_each_engine([](Engine& engine) { engine.abort_sessions(); });
    return;
  }
  spdlog::info("signal {}: draining {} sessions (up to {} ms)", signum, session_count(),
               config_.drain_timeout.count());
  begin_drain();
}

void Daemon::begin_drain() {
  draining_ = true;
  if (admin_) admin_->set_draining(true);
  engines_draining_ = 1 + remote_workers_.size();
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<Daemon*>(timer->data);
        spdlog::warn("drain timeout: closing {} sessions", self->session_count());
        self->for_each_engine([](Engine& engine) { engine.abort_sessions(); });
      },
      static_cast<std::uint64_t>(config_.drain_timeout.count()), 0);
  // Each engine reports when its last session has gone: worker 1 directly, the others by waking
  // this loop (uv_async_send may fold several wake-ups into one, hence the counter).
  engine_->begin_drain([this] {
    --engines_draining_;
    on_engine_drained();
  });
  for (auto& remote : remote_workers_) {
    remote.thread->call([&] {
      remote.engine->begin_drain([this] {
        --engines_draining_;
        uv_async_send(&drained_);
      });
    });
  }
}

void Daemon::on_engine_drained() {
  if (draining_ && engines_draining_ == 0) close_control_handles();
}

void Daemon::close_control_handles() {
  // With these closed and every engine's handles closed, the loops have nothing left and end.
  if (control_handles_closed_) return;
  control_handles_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drained_), nullptr);
  watcher_->stop();
  if (admin_) admin_->stop();
  for_each_engine([](Engine& engine) { engine.close_handles(); });
  for (auto& remote : remote_workers_) remote.thread->finish();
  remote_workers_finished_ = true;
}

// --- live reload ------------------------------------------------------------------------------

void Daemon::reload(std::string_view trigger) {
  if (draining_) return;
  spdlog::info("config: reloading {} ({})", options_.config_path, trigger);
  ConfigResult loaded = load_config(options_.config_path);
  std::string why;
  if (!loaded.config) {
    for (const ConfigError& error : loaded.errors) spdlog::error("config: {}", error.to_string());
    why = std::to_string(loaded.errors.size()) + " error(s)";
  } else if (apply(std::move(*loaded.config), why)) {
    ++stats_.reloads_success;
    spdlog::info("config: reload applied");
    log_listeners();
    log_summary();
    return;
  }
  ++stats_.reloads_failure;
  spdlog::error("config: reload rejected ({}); the running config stays", why);
}

bool Daemon::apply(Config next, std::string& why) {
  // Worker 1 first: if its new listeners cannot bind, nothing has changed anywhere. The others
  // then bind the same ports, which SO_REUSEPORT lets them share.
  if (!engine_->apply(next, why)) return false;
  const Config shared = with_bound_ports(next);
  for (std::size_t i = 0; i < remote_workers_.size(); ++i) {
    RemoteWorker& remote = remote_workers_[i];
    std::string remote_why;
    if (!remote.thread->call([&] { return remote.engine->apply(shared, remote_why); })) {
      // Worker 1 already runs the new config: say loudly that this worker does not.
      spdlog::error("config: worker {} keeps the old config: {}", i + 2, remote_why);
    }
  }
  if (next.workers != config_.workers) {
    spdlog::warn("config: workers changes take effect at the next start; {} workers run", 1 + remote_workers_.size());
  }
  if (next.admin != config_.admin) {
    spdlog::warn("config: admin.bind changes take effect at the next start; admin stays on {}",
                 admin_ ? admin_->bound_address() : "none");
  }
  if (next.log != config_.log) setup_logging(next.log, options_.log_level);
  config_ = std::move(next);
  return true;
}

}  // namespace sluice
