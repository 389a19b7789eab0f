#include "sluice/control/daemon.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <future>
#include <thread>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "sluice/log/access_log.hpp"
#include "sluice/metrics/metrics_merge.hpp"
#include "sluice/metrics/process_metrics.hpp"

namespace sluice {

namespace {

// Descriptors kept free of clients: backend sockets of admitted clients, health checks, the admin.
constexpr int kDescriptorReserve = 32;
// How often the control plane pings every worker (the liveness clock of /healthz).
constexpr std::uint64_t kPingIntervalMs = 200;

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

// Waits for `future` until `deadline`; nullopt when it is late or its task never ran.
template <typename T>
std::optional<T> get_by(std::future<T>& future, std::chrono::steady_clock::time_point deadline) {
  if (future.wait_until(deadline) != std::future_status::ready) return std::nullopt;
  try {
    return future.get();
  } catch (const std::future_error&) {
    return std::nullopt;  // the worker finished without running it
  }
}

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

Daemon::Daemon(Config config, Options options)
    : worker_timeout_(config.admin.worker_timeout),
      config_(std::move(config)),
      options_(std::move(options)),
      descriptor_ceiling_(raise_descriptor_limit() - kDescriptorReserve),
      reports_([this](const HealthReport& report) {
        if (auto it = monitors_.find(report.service); it != monitors_.end()) it->second->on_report(report);
      }) {
  uv_loop_init(&loop_);
}

Daemon::~Daemon() {
  for (auto& worker : workers_) worker->thread->finish();
  workers_.clear();  // workers after their loops ended, then the threads
  watcher_.reset();
  uv_loop_close(&loop_);
}

int Daemon::run() {
  // A peer that closes while we write must not kill the process; the write reports EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);

  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &ping_timer_);
  uv_async_init(&loop_, &drained_, [](uv_async_t* async) { static_cast<Daemon*>(async->data)->on_worker_drained(); });
  sigterm_.data = sigint_.data = drain_timer_.data = ping_timer_.data = drained_.data = this;
  watcher_ = std::make_unique<ConfigWatcher>(&loop_, options_.config_path,
                                             [this](std::string_view trigger) { reload(trigger); });

  // Signals first: a SIGHUP or SIGTERM sent as soon as the daemon announces itself is handled,
  // not fatal.
  auto on_signal = [](uv_signal_t* handle, int signum) { static_cast<Daemon*>(handle->data)->on_signal(signum); };
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  watcher_->start();

  std::string why;
  if (const int rc = reports_.start(&loop_); rc != 0) {
    why = std::string("cannot start the queue of health reports: ") + uv_err_name(rc);
  }
  const bool ok = why.empty() && start_workers(worker_count(config_.workers), why) && start_admin();
  if (ok) {
    dns_ = std::make_unique<DnsClient>(&loop_, config_.dns);
    log_listeners();
    log_summary();
    update_monitors(config_);
    uv_timer_start(
        &ping_timer_, [](uv_timer_t* timer) { static_cast<Daemon*>(timer->data)->ping_workers(); }, 0,
        kPingIntervalMs);
  } else {
    if (!why.empty()) spdlog::error("{}", why);
    close_control_handles();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& worker : workers_) worker->thread->finish();
  if (ok) spdlog::info("stopped");
  return ok ? 0 : 1;
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

void Daemon::update_monitors(const Config& config) {
  // Each change a monitor decides reaches every worker as a task, queued behind anything posted
  // before it (a reload's commit included), so a worker applies it to the services it then runs.
  auto publish = [this](const BackendView& view) {
    post_to_workers([view](Worker& worker) { worker.apply_view(view); });
  };
  std::erase_if(retired_monitors_, [](const auto& monitor) { return monitor->finished(); });
  std::map<std::string, std::unique_ptr<ServiceMonitor>> next;
  std::vector<ServiceMonitor*> started;
  for (const ServiceConfig& service : config.services) {
    auto old = monitors_.find(service.name);
    if (old != monitors_.end() && old->second->service().config() == service) {
      next[service.name] = std::move(old->second);
      continue;
    }
    const ServiceMonitor* previous = old != monitors_.end() ? old->second.get() : nullptr;
    auto& monitor = next[service.name] = std::make_unique<ServiceMonitor>(&loop_, *dns_, service, previous, publish);
    started.push_back(monitor.get());
  }
  for (auto& [name, monitor] : monitors_) {
    if (!monitor) continue;
    monitor->stop();
    retired_monitors_.push_back(std::move(monitor));
  }
  monitors_ = std::move(next);
  for (ServiceMonitor* monitor : started) monitor->start();
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
  spdlog::info("admin listening address={} paths=/metrics,/healthz,/backends", admin_->bound_address());
  return true;
}

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

std::string Daemon::render_metrics() {
  // Every worker collects at once on its own loop; the control plane waits for each up to one
  // deadline. A late worker counts with its last answer, so no counter goes backwards.
  const std::uint64_t now = uv_hrtime();
  std::vector<std::future<std::vector<prometheus::MetricFamily>>> pending;
  if (!workers_finished_) {
    for (auto& worker : workers_) {
      pending.push_back(
          worker->thread->submit([worker = worker->worker.get(), now] { return worker->collect_metrics(now); }));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + worker_timeout_;
  std::vector<prometheus::MetricFamily> families;
  std::vector<std::pair<std::uint32_t, bool>> answered;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    DataWorker& worker = *workers_[i];
    std::optional<std::vector<prometheus::MetricFamily>> fresh;
    if (i < pending.size()) fresh = get_by(pending[i], deadline);
    if (fresh) worker.last_metrics = std::move(*fresh);
    answered.emplace_back(worker.number, fresh.has_value());
    merge_metric_families(families, worker.last_metrics);
  }
  // The control plane's own: each backend's state and its monitor's counters, once per process.
  std::vector<const Service*> monitored;
  for (const auto& [name, monitor] : monitors_) monitored.push_back(&monitor->service());
  merge_metric_families(families, collect_metrics({}, monitored, stats_, now, MetricsPart::control_plane));
  families.push_back(worker_up_family(answered));
  for (auto& family : config_state_families(stats_)) families.push_back(std::move(family));
  for (auto& family : collect_process_metrics()) families.push_back(std::move(family));
  return serialize_metrics(families);
}

void Daemon::log_listeners() const {
  for (std::size_t i = 0; i < config_.listeners.size() && i < bound_addresses_.size(); ++i) {
    const ListenerConfig& listener = config_.listeners[i];
    spdlog::info("listening listener={} address={} service={} workers={}", listener.name, bound_addresses_[i],
                 listener.service, workers_.size());
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
    spdlog::warn("signal {} during drain: closing {} sessions now", signum, session_count(worker_timeout_));
    post_to_workers([](Worker& worker) { worker.abort_sessions(); });
    return;
  }
  spdlog::info("signal {}: draining {} sessions (up to {} ms)", signum, session_count(worker_timeout_),
               config_.drain_timeout.count());
  begin_drain();
}

void Daemon::begin_drain() {
  draining_ = true;
  if (admin_) admin_->set_draining(true);
  uv_timer_stop(&ping_timer_);  // a worker busy closing sessions is not a stuck one
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<Daemon*>(timer->data);
        spdlog::warn("drain timeout: closing {} sessions", self->session_count(self->worker_timeout_));
        self->post_to_workers([](Worker& worker) { worker.abort_sessions(); });
      },
      static_cast<std::uint64_t>(config_.drain_timeout.count()), 0);
  // Each worker reports when its last session has gone by waking this loop (uv_async_send may
  // fold several wake-ups into one, hence the counter).
  workers_draining_ = workers_.size();
  post_to_workers([this](Worker& worker) {
    worker.begin_drain([this] {
      --workers_draining_;
      uv_async_send(&drained_);
    });
  });
}

void Daemon::on_worker_drained() {
  if (draining_ && workers_draining_ == 0) close_control_handles();
}

void Daemon::close_control_handles() {
  // With these closed and every worker's handles closed, the loops have nothing left and end.
  if (control_handles_closed_) return;
  control_handles_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&ping_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drained_), nullptr);
  reports_.close();
  for (auto& [name, monitor] : monitors_) monitor->stop();
  for (auto& monitor : retired_monitors_) monitor->stop();
  dns_.reset();  // after the monitors' lookups were cancelled
  watcher_->stop();
  if (admin_) admin_->stop();
  post_to_workers([](Worker& worker) { worker.close_handles(); });
  for (auto& worker : workers_) worker->thread->finish();
  workers_finished_ = true;
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
    ++stats_.generation;
    stats_.last_reload_successful = true;
    spdlog::info("config: reload applied generation={}", stats_.generation);
    log_listeners();
    log_summary();
    return;
  }
  ++stats_.reloads_failure;
  stats_.last_reload_successful = false;
  spdlog::error("config: reload rejected ({}); the running config stays", why);
}

bool Daemon::apply(Config next, std::string& why) {
  // Two phases: every worker prepares (builds services, binds new sockets) without changing what
  // runs; only when all have succeeded in time does every worker commit, else every one aborts.
  // LoopResources 1 prepares first, so that a new listener on port 0 has a port for the others to share.
  // A worker's tasks run in order, so an abort queued behind a late prepare still undoes it.
  using Prepared = std::pair<bool, std::string>;
  const auto deadline = std::chrono::steady_clock::now() + worker_timeout_;
  const std::uint32_t fail_in = std::exchange(fail_next_reload_in_, 0);  // a test hook
  auto prepare = [&](DataWorker& worker, std::shared_ptr<const Config> config) {
    return worker.thread->submit([worker = worker.worker.get(), config, fail = worker.number == fail_in] {
      std::string reason;
      const bool ok = worker->prepare(*config, reason);
      if (ok && fail) return Prepared{false, "failure injected by /test/fail-next-reload"};
      return Prepared{ok, reason};
    });
  };
  auto abort_all = [&] { post_to_workers([](Worker& worker) { worker.abort_prepared(); }); };

  DataWorker& first = *workers_.front();
  auto first_result = prepare(first, std::make_shared<const Config>(next));
  auto first_prepared = get_by(first_result, deadline);
  if (!first_prepared || !first_prepared->first) {
    why = first_prepared ? first_prepared->second : "worker 1 did not answer in time";
    abort_all();
    return false;
  }
  auto ports = first.thread->submit([worker = first.worker.get()] { return worker->prepared_ports(); });
  const auto first_ports = get_by(ports, deadline);
  if (!first_ports) {
    why = "worker 1 did not answer in time";
    abort_all();
    return false;
  }
  const auto shared = std::make_shared<const Config>(with_bound_ports(next, *first_ports));
  std::vector<std::future<Prepared>> results;
  for (std::size_t i = 1; i < workers_.size(); ++i) results.push_back(prepare(*workers_[i], shared));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto prepared = get_by(results[i], deadline);
    if (!prepared || !prepared->first) {
      why = "worker " + std::to_string(i + 2) + ": " + (prepared ? prepared->second : "did not answer in time");
      abort_all();
      return false;
    }
  }
  post_to_workers([](Worker& worker) { worker.commit_prepared(); });
  update_monitors(next);  // their views are queued behind the commit
  // Queued behind the commit: the addresses worker 1's listeners now have (for the log lines).
  auto addresses = first.thread->submit([worker = first.worker.get()] { return worker->bound_addresses(); });
  bound_addresses_ = get_by(addresses, std::chrono::steady_clock::now() + worker_timeout_)
                         .value_or(std::vector<std::string>{});

  if (next.workers != config_.workers) {
    spdlog::warn("config: workers changes take effect at the next start; {} workers run", workers_.size());
  }
  if (next.admin != config_.admin) {
    spdlog::warn("config: admin changes take effect at the next start; admin stays on {}",
                 admin_ ? admin_->bound_address() : "none");
    next.admin = config_.admin;
  }
  if (next.dns != config_.dns) {
    spdlog::warn("config: dns changes take effect at the next start; the running DNS servers stay");
    next.dns = config_.dns;
  }
  if (next.log != config_.log) setup_logging(next.log, options_.log_level);
  config_ = std::move(next);
  return true;
}

}  // namespace sluice
