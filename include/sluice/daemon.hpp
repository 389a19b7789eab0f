#pragma once
// The process: runs `workers` engines (worker 1 on this thread's loop, the others on threads of
// their own), handles signals, the graceful drain and live reload for all of them, and serves the
// admin endpoint with their metrics summed. Knows nothing of protocol details.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
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
#include "sluice/engine.hpp"
#include "sluice/metrics.hpp"
#include "sluice/worker_thread.hpp"

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
  // Workers 2..N: an engine on a thread of its own. Worker 1's engine runs on this thread.
  struct RemoteWorker {
    std::unique_ptr<WorkerThread> thread;
    std::unique_ptr<Engine> engine;  // made, used and left on `thread`
  };

  bool start_workers(std::uint32_t count, std::string& why);
  bool start_admin();
  /// Runs `task` with every engine, each on its own thread, one after the other; the caller waits.
  void for_each_engine(const std::function<void(Engine&)>& task);
  std::size_t session_count();
  std::optional<AdminResponse> render_admin(std::string_view path);
  void log_listeners() const;
  void log_summary() const;
  void on_signal(int signum);
  void begin_drain();
  void on_engine_drained();
  void close_control_handles();

  // Live reload: a valid config replaces the running one; an invalid one changes nothing.
  void reload(std::string_view trigger);
  bool apply(Config next, std::string& why);
  /// `config` as workers 2..N bind it: a port 0 becomes the port worker 1 got for that listener.
  Config with_bound_ports(Config config) const;

  Config config_;
  Options options_;
  uv_loop_t loop_;
  int descriptor_ceiling_;
  std::unique_ptr<Engine> engine_;
  std::vector<RemoteWorker> remote_workers_;
  bool remote_workers_finished_ = false;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ConfigWatcher> watcher_;
  DaemonStats stats_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_timer_t drain_timer_;
  uv_async_t drained_;                          // an engine on another thread has drained
  std::atomic<std::size_t> engines_draining_{0};
  bool draining_ = false;
  bool control_handles_closed_ = false;
};

}  // namespace sluice
