#include "sluice/daemon.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "sluice/access_log.hpp"
#include "sluice/backends_json.hpp"
#include "sluice/process_metrics.hpp"
#include "sluice/sockaddr_text.hpp"

namespace sluice {

namespace {

// How often replaced services and listeners are checked for their last session.
constexpr std::uint64_t kReapIntervalMs = 1000;

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

}  // namespace

Daemon::Daemon(Config config, Options options) : config_(std::move(config)), options_(std::move(options)) {
  uv_loop_init(&loop_);
  worker_ = std::make_unique<Worker>(&loop_);
  worker_->descriptor_ceiling = raise_descriptor_limit() - kDescriptorReserve;
}

Daemon::~Daemon() {
  listeners_.clear();
  retired_listeners_.clear();
  services_.clear();
  retired_services_.clear();
  watcher_.reset();
  worker_.reset();
  uv_loop_close(&loop_);
}

int Daemon::run() {
  // A peer that closes while we write must not kill the process; the write reports EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);

  // Nothing here blocks on DNS: named backends start down and come up with their first answer.
  for (const ServiceConfig& config : config_.services) services_[config.name] = make_service(config, nullptr);
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &reap_timer_);
  sigterm_.data = sigint_.data = drain_timer_.data = reap_timer_.data = this;
  watcher_ = std::make_unique<ConfigWatcher>(&loop_, options_.config_path,
                                             [this](std::string_view trigger) { reload(trigger); });

  // Signals first: a SIGHUP or SIGTERM sent as soon as the daemon announces itself is handled,
  // not fatal.
  auto on_signal = [](uv_signal_t* handle, int signum) { static_cast<Daemon*>(handle->data)->on_signal(signum); };
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  watcher_->start();

  const bool ok = start_listeners() && start_admin();
  if (ok) {
    log_summary();
    for (auto& [name, entry] : services_) entry.monitor->start();
  } else {
    for (auto& listener : listeners_) listener->stop_accepting();
    close_control_handles();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (ok) spdlog::info("stopped");
  return ok ? 0 : 1;
}

Daemon::ServiceEntry Daemon::make_service(const ServiceConfig& config, const Service* previous) {
  ServiceEntry entry;
  entry.service = std::make_unique<Service>(config, uv_hrtime());
  if (previous != nullptr) entry.service->inherit_state(*previous);
  entry.monitor = std::make_unique<ServiceMonitor>(&loop_, *entry.service);
  return entry;
}

std::unique_ptr<Listener> Daemon::open_listener(const ListenerConfig& config, Service& service, std::string& why) {
  sockaddr_storage bind{};
  if (!resolve_blocking(config.bind, bind, why)) {
    why = "listener " + config.name + ": cannot resolve bind address " + config.bind.to_string() + ": " + why;
    return nullptr;
  }
  auto listener = std::make_unique<Listener>(*worker_, config, service);
  if (!listener->start(reinterpret_cast<const sockaddr*>(&bind), why)) {
    why = "listener " + config.name + ": " + why;
    retire(std::move(listener));  // its socket handle closes on the next loop turn
    return nullptr;
  }
  spdlog::info("listening listener={} address={} service={}", config.name, listener->bound_address(),
               config.service);
  return listener;
}

bool Daemon::start_listeners() {
  for (const ListenerConfig& config : config_.listeners) {
    std::string why;
    auto listener = open_listener(config, *services_.at(config.service).service, why);
    if (!listener) {
      spdlog::error("{}", why);
      return false;
    }
    listeners_.push_back(std::move(listener));
  }
  return true;
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
  std::vector<const Service*> services;
  for (const auto& [name, entry] : services_) services.push_back(entry.service.get());
  if (path == "/backends") {
    const double unix_now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return AdminResponse{200, "application/json", render_backends_json(services, uv_hrtime(), unix_now)};
  }
  if (path != "/metrics") return std::nullopt;
  std::vector<const Listener*> listeners;
  for (const auto& listener : listeners_) listeners.push_back(listener.get());
  auto families = collect_metrics(listeners, services, stats_, uv_hrtime());
  for (auto& family : collect_process_metrics()) families.push_back(std::move(family));
  return AdminResponse{200, std::string(kMetricsContentType), serialize_metrics(families)};
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
    for (const Backend& backend : services_.at(service.name).service->backends()) {
      spdlog::info("  backend {} address={} node={} weight={} max_connections={}",
                   backend.config.name, backend.config.address.to_string(),
                   backend.config.node.empty() ? "-" : backend.config.node, backend.config.weight,
                   backend.config.max_connections);
    }
  }
}

void Daemon::on_signal(int signum) {
  if (draining_) {
    spdlog::warn("signal {} during drain: closing {} sessions now", signum, worker_->session_count);
    worker_->abort_all_sessions();
    return;
  }
  spdlog::info("signal {}: draining {} sessions (up to {} ms)", signum, worker_->session_count,
               config_.drain_timeout.count());
  begin_drain();
}

void Daemon::begin_drain() {
  draining_ = true;
  if (admin_) admin_->set_draining(true);
  for (auto& listener : listeners_) listener->stop_accepting();
  if (worker_->session_count == 0) {
    close_control_handles();
    return;
  }
  worker_->on_last_session_closed = [this] { close_control_handles(); };
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<Daemon*>(timer->data);
        spdlog::warn("drain timeout: closing {} sessions", self->worker_->session_count);
        self->worker_->abort_all_sessions();
      },
      static_cast<std::uint64_t>(config_.drain_timeout.count()), 0);
}

void Daemon::close_control_handles() {
  // With the listeners and these closed, the loop has nothing left and uv_run returns.
  if (control_handles_closed_) return;
  control_handles_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&reap_timer_), nullptr);
  watcher_->stop();
  for (auto& [name, entry] : services_) entry.monitor->stop();
  for (auto& entry : retired_services_) entry.monitor->stop();
  if (admin_) admin_->stop();
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
    log_summary();
    return;
  }
  ++stats_.reloads_failure;
  spdlog::error("config: reload rejected ({}); the running config stays", why);
}

bool Daemon::apply(Config next, std::string& why) {
  // 1. Services: an unchanged one is kept as it is (queues, slots, counters); a changed or new
  //    one is built fresh, starting from the old backends' addresses and health.
  Services fresh;
  auto service_for = [&](const std::string& name) -> Service& {
    auto it = fresh.find(name);
    return it != fresh.end() ? *it->second.service : *services_.at(name).service;
  };
  for (const ServiceConfig& config : next.services) {
    auto old = services_.find(config.name);
    if (old != services_.end() && old->second.service->config() == config) continue;
    fresh[config.name] = make_service(config, old != services_.end() ? old->second.service.get() : nullptr);
  }

  // 2. Listeners, matched by bind address: a kept one keeps its socket, so no client is refused.
  //    New sockets are bound before anything changes; if one fails, the reload is undone.
  std::vector<std::unique_ptr<Listener>> opened(next.listeners.size());
  std::vector<Listener*> reused(next.listeners.size(), nullptr);
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    const ListenerConfig& config = next.listeners[i];
    for (auto& listener : listeners_) {
      if (listener->config().bind == config.bind &&
          std::find(reused.begin(), reused.end(), listener.get()) == reused.end()) {
        reused[i] = listener.get();
        break;
      }
    }
    if (reused[i] != nullptr) continue;
    opened[i] = open_listener(config, service_for(config.service), why);
    if (!opened[i]) {
      for (auto& listener : opened) {
        if (listener) retire(std::move(listener));
      }
      for (auto& [name, entry] : fresh) retire(std::move(entry));
      return false;
    }
  }

  // 3. Commit. Sessions already open keep the listener and service they started with.
  std::vector<std::unique_ptr<Listener>> listeners;
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    if (opened[i]) {
      listeners.push_back(std::move(opened[i]));
      continue;
    }
    auto it = std::find_if(listeners_.begin(), listeners_.end(),
                           [&](const auto& listener) { return listener.get() == reused[i]; });
    (*it)->reconfigure(next.listeners[i], service_for(next.listeners[i].service));
    listeners.push_back(std::move(*it));
  }
  for (auto& listener : listeners_) {
    if (listener) retire(std::move(listener));
  }
  listeners_ = std::move(listeners);

  for (auto& [name, entry] : services_) {
    if (fresh.count(name) != 0 || next.find_service(name) == nullptr) retire(std::move(entry));
  }
  std::erase_if(services_, [](const auto& item) { return !item.second.service; });
  for (auto& [name, entry] : fresh) {
    entry.monitor->start();
    services_[name] = std::move(entry);
  }

  if (next.admin != config_.admin) {
    spdlog::warn("config: admin.bind changes take effect at the next start; admin stays on {}",
                 admin_ ? admin_->bound_address() : "none");
  }
  if (next.log != config_.log) setup_logging(next.log, options_.log_level);
  config_ = std::move(next);
  return true;
}

void Daemon::retire(ServiceEntry entry) {
  retired_services_.push_back(std::move(entry));
  start_reaping();
}

void Daemon::retire(std::unique_ptr<Listener> listener) {
  listener->stop_accepting();
  retired_listeners_.push_back(std::move(listener));
  start_reaping();
}

void Daemon::start_reaping() {
  if (control_handles_closed_ || uv_is_active(reinterpret_cast<uv_handle_t*>(&reap_timer_))) return;
  uv_timer_start(
      &reap_timer_, [](uv_timer_t* timer) { static_cast<Daemon*>(timer->data)->reap_retired(); }, 0,
      kReapIntervalMs);
}

void Daemon::reap_retired() {
  std::erase_if(retired_listeners_, [](const auto& listener) { return listener->finished(); });
  std::erase_if(retired_services_, [](ServiceEntry& entry) {
    // Its health checks run on while queued or active sessions may still need a backend.
    if (entry.service->in_use()) return false;
    entry.monitor->stop();
    return entry.monitor->finished();
  });
  if (retired_listeners_.empty() && retired_services_.empty()) uv_timer_stop(&reap_timer_);
}

}  // namespace sluice
