#include "sluice/health/health_checker.hpp"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

namespace sluice {

namespace {

// A timeout that fires this much after its deadline was held up by the loop, not by the backend.
constexpr std::uint64_t kLateMs = 50;

}  // namespace

// One check's socket. It outlives the check when abandoned (timeout, stop): it frees itself in
// its close callback, and a late connect callback finds `owner` cleared.
struct HealthChecker::Probe {
  uv_tcp_t socket{};
  uv_connect_t connect{};
  HealthChecker* owner = nullptr;

  void close() {
    owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&socket),
             [](uv_handle_t* handle) { delete static_cast<Probe*>(handle->data); });
  }
};

HealthChecker::HealthChecker(uv_loop_t* loop, Millis interval, Millis timeout, AddressSource address,
                             Report report)
    : loop_(loop), interval_(interval), timeout_(timeout), address_(std::move(address)), report_(std::move(report)) {
  uv_timer_init(loop_, &interval_timer_);
  uv_timer_init(loop_, &timeout_timer_);
  interval_timer_.data = timeout_timer_.data = this;
}

void HealthChecker::start(Millis first_delay) {
  if (stopped_) return;
  const auto every = static_cast<std::uint64_t>(interval_.count());
  const int rc = uv_timer_start(
      &interval_timer_, [](uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->begin_check(); },
      static_cast<std::uint64_t>(first_delay.count()), every);
  if (rc != 0) spdlog::error("health_check_not_started error={}", uv_err_name(rc));
}

void HealthChecker::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->close();
  auto on_closed = [](uv_handle_t* handle) { --static_cast<HealthChecker*>(handle->data)->open_timers_; };
  uv_close(reinterpret_cast<uv_handle_t*>(&interval_timer_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timeout_timer_), on_closed);
}

void HealthChecker::begin_check() {
  // The timeout is at most the interval (config), so a check still running here is one whose
  // connect callback and timeout are due in this same loop iteration: let it finish.
  if (probe_ != nullptr) return;
  const sockaddr_storage* address = address_();
  if (address == nullptr) return;

  auto* probe = new Probe;
  probe_started_ms_ = uv_now(loop_);
  probe_extended_ = false;
  probe->owner = this;
  probe->socket.data = probe;
  probe->connect.data = probe;
  uv_tcp_init(loop_, &probe->socket);
  probe_ = probe;
  int rc = uv_tcp_connect(&probe->connect, &probe->socket, reinterpret_cast<const sockaddr*>(address),
                          [](uv_connect_t* request, int status) {
                            auto* probe = static_cast<Probe*>(request->data);
                            if (probe->owner == nullptr) return;  // abandoned: already closed
                            probe->owner->finish_check(status == 0, status == 0 ? "" : uv_err_name(status));
                          });
  if (rc == UV_EMFILE || rc == UV_ENFILE || rc == UV_ENOBUFS || rc == UV_ENOMEM) {
    // No socket to be had here: that says nothing about the backend, so the check is skipped.
    uv_timer_stop(&timeout_timer_);
    std::exchange(probe_, nullptr)->close();
    return;
  }
  if (rc != 0) {
    finish_check(false, uv_err_name(rc));
    return;
  }
  uv_timer_start(
      &timeout_timer_, [](uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->on_timeout(); },
      static_cast<std::uint64_t>(timeout_.count()), 0);
}

void HealthChecker::on_timeout() {
  // Timers run before I/O in a loop turn. When the loop was held well past the deadline (the
  // control plane waited for a slow worker), the connect may have completed unseen: the check
  // gets one poll of the loop (a timer 1 ms on) before it counts as timed out.
  const auto deadline = probe_started_ms_ + static_cast<std::uint64_t>(timeout_.count());
  if (!probe_extended_ && uv_now(loop_) > deadline + kLateMs) {
    probe_extended_ = true;
    const int rc = uv_timer_start(
        &timeout_timer_, [](uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->on_timeout(); }, 1, 0);
    if (rc == 0) return;
  }
  finish_check(false, "timeout");
}

void HealthChecker::finish_check(bool passed, std::string_view error) {
  uv_timer_stop(&timeout_timer_);
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->close();
  report_(passed, error);
}

}  // namespace sluice
