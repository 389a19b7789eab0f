// SIGTERM/SIGINT: stop accepting, let sessions finish up to drain_timeout, then close the rest;
// a second signal closes them at once.
#include "sluice/control/daemon.hpp"

#include <spdlog/spdlog.h>

#include "sluice/control/service_manager.hpp"

namespace sluice {

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
  notify_service_manager("STOPPING=1");
  if (admin_) admin_->set_draining(true);
  ping_timer_.close();  // a worker busy closing sessions is not a stuck one
  const int rc = uv_timer_start(
      drain_timer_.get(),
      [](uv_timer_t* timer) {
        auto* self = owner<Daemon>(timer);
        spdlog::warn("drain timeout: closing {} sessions", self->session_count(self->worker_timeout_));
        self->post_to_workers([](Worker& worker) { worker.abort_sessions(); });
      },
      static_cast<std::uint64_t>(config_.drain_timeout.count()), 0);
  if (rc != 0) spdlog::error("drain timeout not armed: {}; a second signal closes the sessions", uv_err_name(rc));
  // Each worker reports when its last session has gone by waking this loop (uv_async_send may
  // fold several wake-ups into one, hence the counter). The handle is taken here, on this thread:
  // it stays allocated until this loop's next turn, after close_control_handles() has joined
  // every worker thread, so a late wake-up never touches freed memory.
  workers_draining_ = workers_.size();
  post_to_workers([this, drained = drained_.get()](Worker& worker) {
    worker.begin_drain([this, drained] {
      --workers_draining_;
      if (const int sent = uv_async_send(drained); sent != 0) spdlog::error("drained wake-up lost: {}", uv_err_name(sent));
    });
  });
}

void Daemon::on_worker_drained() {
  if (draining_ && workers_draining_ == 0) close_control_handles();
}

void Daemon::close_control_handles() {
  // With these closed and every worker's handles closed, the loops have nothing left and end.
  if (workers_finished_) return;
  sigterm_.close();
  sigint_.close();
  drain_timer_.close();
  ping_timer_.close();
  drained_.close();
  log_report_timer_.close();
  scaling_timer_.close();
  reports_.close();
  for (auto& [name, monitor] : monitors_) monitor->stop();
  dns_.reset();  // after the monitors' lookups were cancelled
  if (watcher_) watcher_->stop();
  if (admin_) admin_->stop();
  post_to_workers([](Worker& worker) { worker.close_handles(); });
  for (auto& worker : workers_) worker->thread->finish();
  workers_finished_ = true;
}

}  // namespace sluice
