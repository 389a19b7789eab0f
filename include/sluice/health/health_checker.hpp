#pragma once
// Active health checks of one backend: every interval, connect to its current address. A TCP
// check closes at once; an HTTP check sends a GET and reads the response's status (HttpCheckReader).
// A connect that is refused, a check not done within the timeout, or (HTTP) a status outside the
// expected range, a malformed response or a close before the status fails. Reports each outcome;
// the Service's rise/fall state decides what it means.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/config/status_range.hpp"
#include "sluice/uv/handle.hpp"

struct sockaddr_storage;

namespace sluice {

class HealthChecker {
 public:
  /// The address to check now; nullptr while there is none (the check is skipped).
  using AddressSource = std::function<const sockaddr_storage*()>;
  /// `error` is empty when the check passed.
  using Report = std::function<void(bool passed, std::string_view error)>;

  /// What an HTTP check sends (http_check_request) and the statuses that pass.
  struct HttpCheck {
    std::string request;
    StatusRange expect;
  };

  /// `http`: nullopt for a TCP connect check.
  HealthChecker(uv_loop_t* loop, Millis interval, Millis timeout, AddressSource address, Report report,
                std::optional<HttpCheck> http = std::nullopt);
  ~HealthChecker() { stop(); }
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  /// Checks after `first_delay` (0: now), then every interval.
  void start(Millis first_delay = Millis(0));
  /// Checks again now (the address changed) and every interval from here.
  void check_now() { start(); }
  /// Stops for good; a check in flight is abandoned unreported (its socket frees itself). The
  /// object may be destroyed at once.
  void stop();

 private:
  struct Probe;
  void begin_check();
  /// The probe's connect finished well: a TCP check passed, an HTTP check sends its request.
  void on_connected();
  void on_timeout();
  void finish_check(bool passed, std::string_view error);
  /// Closes the check in flight, if any, unreported.
  void abandon_probe();

  uv_loop_t* loop_;
  Millis interval_;
  Millis timeout_;
  AddressSource address_;
  Report report_;
  std::optional<HttpCheck> http_;
  Handle<uv_timer_t> interval_timer_;
  Handle<uv_timer_t> timeout_timer_;
  Probe* probe_ = nullptr;  // the check in flight (it frees itself once abandoned and its requests are done)
  std::uint64_t probe_started_ms_ = 0;  // uv_now() when it began
  bool probe_extended_ = false;         // its timeout was found late once (see on_timeout)
  bool stopped_ = false;
};

}  // namespace sluice
