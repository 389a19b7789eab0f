// Live reload: parse and validate, then every worker prepares and all commit, or all abort.
#include "sluice/control/daemon.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include "sluice/control/deadline.hpp"
#include "sluice/control/service_manager.hpp"
#include "sluice/log/logging.hpp"

namespace sluice {

void Daemon::update_monitors(const Config& config) {
  // Each change a monitor decides reaches every worker as a task, queued behind anything posted
  // before it (a reload's commit included), so a worker applies it to the services it then runs.
  auto publish = [this](const BackendView& view) {
    post_to_workers([view](Worker& worker) { worker.apply_view(view); });
  };
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
    if (monitor) monitor->stop();  // and freed below: its handles close themselves
  }
  monitors_ = std::move(next);
  for (ServiceMonitor* monitor : started) monitor->start();
}

void Daemon::reload(std::string_view trigger) {
  if (draining_) return;
  // systemd shows the unit as reloading until READY=1, sent whatever the outcome.
  notify_service_manager("RELOADING=1");
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
    notify_service_manager("READY=1");
    return;
  }
  ++stats_.reloads_failure;
  stats_.last_reload_successful = false;
  spdlog::error("config: reload rejected ({}); the running config stays", why);
  notify_service_manager("READY=1");
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
  scaling_.configure(next);
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
