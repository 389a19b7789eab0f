#include "sluice/health/health_checker.hpp"

#include <sys/socket.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "sluice/health/http_check.hpp"
#include "sluice/log/log_event.hpp"

namespace sluice {

namespace {

// A timeout that fires this much after its deadline was held up by the loop, not by the backend.
constexpr std::uint64_t kLateMs = 50;

}  // namespace

// One check's socket, its connect and (HTTP) write requests and what it read. libuv always calls
// a request's callback, with UV_ECANCELED when the socket was closed first (abandoned: decided,
// timeout, stop), so an abandoned probe frees itself once its last request has called back;
// `checker` is cleared when it is abandoned. Reads stop with the close.
struct HealthChecker::Probe {
  Handle<uv_tcp_t> socket;
  uv_connect_t connect{};
  uv_write_t write{};
  std::string request;  // an HTTP check's request, kept until its write completes
  std::optional<HttpCheckReader> reader;
  std::array<char, 4096> buffer{};  // a health response's head is read in a few of these at most
  HealthChecker* checker = nullptr;
  int requests = 0;  // connect and write requests not called back yet

  static void release(Probe* probe) {
    if (probe->checker == nullptr && probe->requests == 0) delete probe;
  }
};

HealthChecker::HealthChecker(uv_loop_t* loop, Millis interval, Millis timeout, AddressSource address,
                             Report report, std::optional<HttpCheck> http)
    : loop_(loop),
      interval_(interval),
      timeout_(timeout),
      address_(std::move(address)),
      report_(std::move(report)),
      http_(std::move(http)) {
  int rc = interval_timer_.init(loop_, this, uv_timer_init);
  if (rc == 0) rc = timeout_timer_.init(loop_, this, uv_timer_init);
  if (rc != 0) log_event(spdlog::level::err, "health_check_not_started", {{"error", uv_err_name(rc)}});
}

void HealthChecker::start(Millis first_delay) {
  if (stopped_ || !interval_timer_ || !timeout_timer_) return;
  const auto every = static_cast<std::uint64_t>(interval_.count());
  const int rc = uv_timer_start(
      interval_timer_.get(), [](uv_timer_t* timer) { owner<HealthChecker>(timer)->begin_check(); },
      static_cast<std::uint64_t>(first_delay.count()), every);
  if (rc != 0) log_event(spdlog::level::err, "health_check_not_started", {{"error", uv_err_name(rc)}});
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
  probe->socket.close();  // requests in flight call back with UV_ECANCELED; the last one frees it
  Probe::release(probe);
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
                          Probe* done = owner<Probe>(request);
                          --done->requests;
                          if (done->checker == nullptr) return Probe::release(done);
                          if (status != 0) return done->checker->finish_check(false, uv_err_name(status));
                          done->checker->on_connected();
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
  probe->requests = 1;
  probe_ = probe.release();
  rc = uv_timer_start(
      timeout_timer_.get(), [](uv_timer_t* timer) { owner<HealthChecker>(timer)->on_timeout(); },
      static_cast<std::uint64_t>(timeout_.count()), 0);
  if (rc != 0) {
    abandon_probe();
    finish_check(false, uv_err_name(rc));
  }
}

void HealthChecker::on_connected() {
  if (!http_) return finish_check(true, "");
  Probe& probe = *probe_;
  probe.reader.emplace(http_->expect);
  probe.request = http_->request;
  probe.write.data = &probe;
  uv_buf_t request = uv_buf_init(probe.request.data(), static_cast<unsigned>(probe.request.size()));
  int rc = uv_write(&probe.write, as_stream(probe.socket.get()), &request, 1, [](uv_write_t* write, int status) {
    Probe* done = owner<Probe>(write);
    --done->requests;
    if (done->checker == nullptr) return Probe::release(done);
    if (status != 0) done->checker->finish_check(false, uv_err_name(status));
  });
  if (rc != 0) return finish_check(false, uv_err_name(rc));
  ++probe.requests;
  rc = uv_read_start(
      as_stream(probe.socket.get()),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
        Probe* reading = owner<Probe>(handle);
        *buffer = uv_buf_init(reading->buffer.data(), static_cast<unsigned>(reading->buffer.size()));
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
        Probe* reading = owner<Probe>(stream);
        if (reading == nullptr || reading->checker == nullptr || nread == 0) return;
        if (nread < 0 && nread != UV_EOF) {
          return reading->checker->finish_check(false, uv_err_name(static_cast<int>(nread)));
        }
        HttpCheckReader& reader = *reading->reader;
        const auto outcome = nread == UV_EOF
                                 ? reader.closed()
                                 : reader.feed({reading->buffer.data(), static_cast<std::size_t>(nread)});
        if (outcome == HttpCheckReader::Outcome::pending) return;
        const std::string reason = reader.reason();  // finish_check frees the probe before it reports
        reading->checker->finish_check(outcome == HttpCheckReader::Outcome::passed, reason);
      });
  if (rc != 0) finish_check(false, uv_err_name(rc));
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
    if (const int rc = uv_timer_stop(timeout_timer_.get()); rc != 0) {
      log_event(spdlog::level::err, "health_check_timer", {{"error", uv_err_name(rc)}});
    }
  }
  abandon_probe();
  report_(passed, error);
}

}  // namespace sluice
