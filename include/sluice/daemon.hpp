#pragma once
// Wiring: builds services (with their resolvers and health checks) and listeners, runs the event
// loop, handles signals, the graceful drain and live reload. Knows nothing of protocol details.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>
#include <uv.h>

#include "sluice/admin_server.hpp"
#include "sluice/config.hpp"
#include "sluice/config_watcher.hpp"
#include "sluice/listener.hpp"
#include "sluice/metrics.hpp"
#include "sluice/service.hpp"
#include "sluice/service_monitor.hpp"
#include "sluice/worker.hpp"

namespace sluice {

class Daemon {
 public:
  struct Options {
    std::string config_path;                              // reloaded on SIGHUP and when it changes
    std::optional<spdlog::level::level_enum> log_level;   // --log-level, kept across reloads
  };

  Daemon(Config config, Options options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Binds and serves until a signal ends it. Returns the process exit code.
  int run();

 private:
  // A service with what keeps its backends current. The monitor goes first (declared last).
  struct ServiceEntry {
    std::unique_ptr<Service> service;
    std::unique_ptr<ServiceMonitor> monitor;
  };
  using Services = std::map<std::string, ServiceEntry>;

  ServiceEntry make_service(const ServiceConfig& config, const Service* previous);
  /// Binds a listener for `config` in front of `service`; nullptr with `why` on failure.
  std::unique_ptr<Listener> open_listener(const ListenerConfig& config, Service& service, std::string& why);
  bool start_listeners();
  bool start_admin();
  std::optional<AdminResponse> render_admin(std::string_view path);
  void log_summary() const;
  void on_signal(int signum);
  void begin_drain();
  void close_control_handles();

  // Live reload: a valid config replaces the running one; an invalid one changes nothing.
  void reload(std::string_view trigger);
  bool apply(Config next, std::string& why);
  void retire(ServiceEntry entry);
  void retire(std::unique_ptr<Listener> listener);
  /// Frees replaced services and listeners once no session refers to them.
  void start_reaping();
  void reap_retired();

  Config config_;
  Options options_;
  uv_loop_t loop_;
  std::unique_ptr<Worker> worker_;
  Services services_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<ServiceEntry> retired_services_;
  std::vector<std::unique_ptr<Listener>> retired_listeners_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ConfigWatcher> watcher_;
  DaemonStats stats_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_timer_t drain_timer_;
  uv_timer_t reap_timer_;
  bool draining_ = false;
  bool control_handles_closed_ = false;
};

}  // namespace sluice
