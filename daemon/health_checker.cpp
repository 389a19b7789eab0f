#include "sluice/health_checker.hpp"

#include <sys/socket.h>

namespace sluice {

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

void HealthChecker::start() {
  if (stopped_) return;
  const auto every = static_cast<std::uint64_t>(interval_.count());
  uv_timer_start(
      &interval_timer_, [](uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->begin_check(); }, 0,
      every);
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
      &timeout_timer_,
      [](uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->finish_check(false, "timeout"); },
      static_cast<std::uint64_t>(timeout_.count()), 0);
}

void HealthChecker::finish_check(bool passed, std::string_view error) {
  uv_timer_stop(&timeout_timer_);
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->close();
  report_(passed, error);
}

}  // namespace sluice
