#pragma once
// Active TCP health checks of one backend: every interval, connect to its current address and
// close at once; a connect that is refused or does not finish within the timeout fails. Reports
// each outcome; the Service's rise/fall state decides what it means.

#include <cstdint>
#include <functional>
#include <string_view>

#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/uv/handle.hpp"

struct sockaddr_storage;

namespace sluice {

class HealthChecker {
 public:
  /// The address to check now; nullptr while there is none (the check is skipped).
  using AddressSource = std::function<const sockaddr_storage*()>;
  /// `error` is empty when the check passed.
  using Report = std::function<void(bool passed, std::string_view error)>;

  HealthChecker(uv_loop_t* loop, Millis interval, Millis timeout, AddressSource address, Report report);
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
  void on_timeout();
  void finish_check(bool passed, std::string_view error);
  /// Closes the check in flight, if any, unreported.
  void abandon_probe();

  uv_loop_t* loop_;
  Millis interval_;
  Millis timeout_;
  AddressSource address_;
  Report report_;
  Handle<uv_timer_t> interval_timer_;
  Handle<uv_timer_t> timeout_timer_;
  Probe* probe_ = nullptr;  // the check in flight (it frees itself in its connect callback)
  std::uint64_t probe_started_ms_ = 0;  // uv_now() when it began
  bool probe_extended_ = false;         // its timeout was found late once (see on_timeout)
  bool stopped_ = false;
};

}  // namespace sluice
