#pragma once
// Wiring: builds services (and their resolvers and health checks) and listeners, runs the event loop, handles signals
// and the graceful drain. Knows nothing of protocol details.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "sluice/admin_server.hpp"
#include "sluice/config.hpp"
#include "sluice/listener.hpp"
#include "sluice/metrics.hpp"
#include "sluice/service.hpp"
#include "sluice/service_monitor.hpp"
#include "sluice/worker.hpp"

namespace sluice {

class Daemon {
 public:
  explicit Daemon(Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Resolves, binds and serves until a signal ends it. Returns the process exit code.
  int run();

 private:
  void build_services();
  bool start_listeners();
  bool start_admin();
  std::optional<AdminResponse> render_admin(std::string_view path);
  void log_summary() const;
  void on_signal(int signum);
  void begin_drain();
  void close_control_handles();

  Config config_;
  uv_loop_t loop_;
  std::unique_ptr<Worker> worker_;
  std::map<std::string, std::unique_ptr<Service>> services_;
  std::vector<std::unique_ptr<ServiceMonitor>> monitors_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unique_ptr<AdminServer> admin_;
  DaemonStats stats_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_timer_t drain_timer_;
  bool draining_ = false;
  bool control_handles_closed_ = false;
};

}  // namespace sluice
