#include "sluice/daemon.hpp"

#include <chrono>
#include <csignal>

#include <spdlog/spdlog.h>

#include "sluice/backends_json.hpp"
#include "sluice/process_metrics.hpp"
#include "sluice/sockaddr_text.hpp"

namespace sluice {

namespace {

std::string health_check_summary(const HealthCheckConfig& check) {
  if (!check.enabled) return "off";
  return "interval_ms=" + std::to_string(check.interval.count()) + ",timeout_ms=" +
         std::to_string(check.timeout.count()) + ",rise=" + std::to_string(check.rise) +
         ",fall=" + std::to_string(check.fall);
}

}  // namespace

Daemon::Daemon(Config config) : config_(std::move(config)) {
  uv_loop_init(&loop_);
  worker_ = std::make_unique<Worker>(&loop_);
}

Daemon::~Daemon() {
  listeners_.clear();
  monitors_.clear();
  services_.clear();
  worker_.reset();
  uv_loop_close(&loop_);
}

int Daemon::run() {
  // A peer that closes while we write must not kill the process; the write reports EPIPE instead.
  std::signal(SIGPIPE, SIG_IGN);

  build_services();
  bool ok = start_listeners() && start_admin();
  if (ok) {
    log_summary();
    for (auto& monitor : monitors_) monitor->start();
    uv_signal_init(&loop_, &sigterm_);
    uv_signal_init(&loop_, &sigint_);
    uv_timer_init(&loop_, &drain_timer_);
    sigterm_.data = sigint_.data = drain_timer_.data = this;
    auto on_signal = [](uv_signal_t* handle, int signum) {
      static_cast<Daemon*>(handle->data)->on_signal(signum);
    };
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_signal_start(&sigint_, on_signal, SIGINT);
  } else {
    for (auto& listener : listeners_) listener->stop_accepting();
    for (auto& monitor : monitors_) monitor->stop();
    if (admin_) admin_->stop();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (ok) spdlog::info("stopped");
  return ok ? 0 : 1;
}

void Daemon::build_services() {
  // Nothing here blocks on DNS: named backends start down and come up with their first answer.
  for (const ServiceConfig& config : config_.services) {
    auto& service = services_[config.name];
    service = std::make_unique<Service>(config, uv_hrtime());
    monitors_.push_back(std::make_unique<ServiceMonitor>(&loop_, *service));
  }
}

bool Daemon::start_listeners() {
  for (const ListenerConfig& config : config_.listeners) {
    sockaddr_storage bind{};
    std::string why;
    if (!resolve_blocking(config.bind, bind, why)) {
      spdlog::error("listener {}: cannot resolve bind address {}: {}", config.name,
                    config.bind.to_string(), why);
      return false;
    }
    Service& service = *services_.at(config.service);
    auto listener = std::make_unique<Listener>(*worker_, config, service);
    bool started = listener->start(reinterpret_cast<const sockaddr*>(&bind), why);
    listeners_.push_back(std::move(listener));
    if (!started) {
      spdlog::error("listener {}: {}", config.name, why);
      return false;
    }
    spdlog::info("listening listener={} address={} service={}", config.name,
                 listeners_.back()->bound_address(), config.service);
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
  for (const auto& [name, service] : services_) services.push_back(service.get());
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
    for (const Backend& backend : services_.at(service.name)->backends()) {
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
  for (auto& monitor : monitors_) monitor->stop();
  if (admin_) admin_->stop();
}

}  // namespace sluice
