#include "sluice/health/health_checker.hpp"

#include <sys/socket.h>

#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

namespace sluice {

namespace {

// A timeout that fires this much after its deadline was held up by the loop, not by the backend.
constexpr std::uint64_t kLateMs = 50;

}  // namespace

// One check's socket and connect request. libuv always calls the connect callback, with
// UV_ECANCELED when the socket was closed first (abandoned: timeout, stop), so that callback is
// where the probe frees itself; `checker` is cleared when it was abandoned.
struct HealthChecker::Probe {
  Handle<uv_tcp_t> socket;
  uv_connect_t connect{};
  HealthChecker* checker = nullptr;
};

HealthChecker::HealthChecker(uv_loop_t* loop, Millis interval, Millis timeout, AddressSource address,
                             Report report)
    : loop_(loop), interval_(interval), timeout_(timeout), address_(std::move(address)), report_(std::move(report)) {
  int rc = interval_timer_.init(loop_, this, uv_timer_init);
  if (rc == 0) rc = timeout_timer_.init(loop_, this, uv_timer_init);
  if (rc != 0) spdlog::error("health_check_not_started error={}", uv_err_name(rc));
}

void HealthChecker::start(Millis first_delay) {
  if (stopped_ || !interval_timer_ || !timeout_timer_) return;
  const auto every = static_cast<std::uint64_t>(interval_.count());
  const int rc = uv_timer_start(
      interval_timer_.get(), [](uv_timer_t* timer) { owner<HealthChecker>(timer)->begin_check(); },
      static_cast<std::uint64_t>(first_delay.count()), every);
  if (rc != 0) spdlog::error("health_check_not_started error={}", uv_err_name(rc));
}

void HealthChecker::stop() {
  if (stopped_) return;
  stopped_ = true;
  abandon_probe();
  interval_timer_.close();
  timeout_timer_.close();
}

void HealthChecker::abandon_probe() {
  if (probe_ == nullptr) return;
  Probe* probe = std::exchange(probe_, nullptr);
  probe->checker = nullptr;
  probe->socket.close();  // its connect callback follows, with UV_ECANCELED, and frees it
}

void HealthChecker::begin_check() {
  // The timeout is at most the interval (config), so a check still running here is one whose
  // connect callback and timeout are due in this same loop iteration: let it finish.
  if (probe_ != nullptr) return;
  const sockaddr_storage* address = address_();
  if (address == nullptr) return;

  auto probe = std::make_unique<Probe>();
  probe->checker = this;
  probe->connect.data = probe.get();
  int rc = probe->socket.init(loop_, probe.get(), uv_tcp_init);
  if (rc == 0) {
    rc = uv_tcp_connect(&probe->connect, probe->socket.get(), as_sockaddr(address),
                        [](uv_connect_t* request, int status) {
                          std::unique_ptr<Probe> done(owner<Probe>(request));
                          if (done->checker == nullptr) return;  // abandoned
                          done->checker->probe_ = nullptr;
                          done->checker->finish_check(status == 0, status == 0 ? "" : uv_err_name(status));
                        });
  }
  // Without a callback to come, the probe goes now (its socket with it).
  if (rc == UV_EMFILE || rc == UV_ENFILE || rc == UV_ENOBUFS || rc == UV_ENOMEM) {
    // No socket to be had here: that says nothing about the backend, so the check is skipped.
    return;
  }
  if (rc != 0) {
    finish_check(false, uv_err_name(rc));
    return;
  }
  probe_started_ms_ = uv_now(loop_);
  probe_extended_ = false;
  probe_ = probe.release();
  rc = uv_timer_start(
      timeout_timer_.get(), [](uv_timer_t* timer) { owner<HealthChecker>(timer)->on_timeout(); },
      static_cast<std::uint64_t>(timeout_.count()), 0);
  if (rc != 0) {
    abandon_probe();
    finish_check(false, uv_err_name(rc));
  }
}

void HealthChecker::on_timeout() {
  // Timers run before I/O in a loop turn. When the loop was held well past the deadline (the
  // control plane waited for a slow worker), the connect may have completed unseen: the check
  // gets one poll of the loop (a timer 1 ms on) before it counts as timed out.
  const auto deadline = probe_started_ms_ + static_cast<std::uint64_t>(timeout_.count());
  if (!probe_extended_ && uv_now(loop_) > deadline + kLateMs) {
    probe_extended_ = true;
    const int rc = uv_timer_start(
        timeout_timer_.get(), [](uv_timer_t* timer) { owner<HealthChecker>(timer)->on_timeout(); }, 1, 0);
    if (rc == 0) return;
  }
  finish_check(false, "timeout");
}

void HealthChecker::finish_check(bool passed, std::string_view error) {
  if (timeout_timer_) {
    if (const int rc = uv_timer_stop(timeout_timer_.get()); rc != 0) spdlog::error("health_check_timer error={}", uv_err_name(rc));
  }
  abandon_probe();
  report_(passed, error);
}

}  // namespace sluice
