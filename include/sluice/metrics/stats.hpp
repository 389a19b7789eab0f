#pragma once
// Counters, time integrals and histograms owned by one event loop. The data path only does plain
// arithmetic on them (no atomics, no locks); the metrics code copies them out on the loop thread.

#include <array>
#include <cstdint>

#include "sluice/metrics/histogram.hpp"
#include "sluice/metrics/time_integral.hpp"

namespace sluice {

/// Why a client was turned away before reaching a backend (label `reason`).
enum class RejectReason : std::uint8_t {
  max_connections,
  not_allowed,
  no_backend,
  queue_full,
  queue_timeout,
  abandoned,     // the client left while queued
  accept_error,  // accept(2) failed; out of descriptors, each pending client closed unaccepted
  bad_proxy_header,  // accept_proxy: no valid PROXY header first, or not within accept_proxy_timeout
};
inline constexpr std::array<const char*, 8> kRejectReasonNames = {
    "max_connections", "not_allowed", "no_backend", "queue_full", "queue_timeout", "abandoned", "accept_error",
    "bad_proxy_header"};

/// Why `mode: http` answered a request itself (label `reason` of sluice_http_errors_total).
enum class HttpError : std::uint8_t {
  bad_request,       // 400: malformed request (then close)
  header_too_large,  // 431
  request_timeout,   // 408: no complete head within http.request_timeout
  queue_full,        // 503
  queue_timeout,     // 503
  no_backend,        // 503: none up
  connect_failed,    // 503: every connect attempt failed
  bad_gateway,       // 502: the backend reset, closed or sent garbage before a full response head
  gateway_timeout,   // 504: no response head within http.response_timeout
  response_aborted,  // the backend failed after the response began: the client connection is closed
  local_error,       // 503: no socket could be opened for the backend (descriptors, local ports)
};
inline constexpr std::array<const char*, 11> kHttpErrorNames = {
    "bad_request", "header_too_large", "request_timeout", "queue_full", "queue_timeout", "no_backend",
    "connect_failed", "bad_gateway", "gateway_timeout", "response_aborted", "local_error"};

struct ListenerStats {
  std::uint64_t accepted_total = 0;
  std::array<std::uint64_t, kRejectReasonNames.size()> rejected_total{};  // by RejectReason
  std::uint32_t active = 0;  // clients connected now
  std::uint64_t spliced_bytes_total = 0;  // written to a sink by splice(2), without a copy
  std::uint64_t http_requests_total = 0;  // mode: http: request heads read
  std::array<std::uint64_t, kHttpErrorNames.size()> http_errors_total{};  // by HttpError
  void reject(RejectReason reason) { ++rejected_total[static_cast<std::size_t>(reason)]; }
};

/// What the scaling signal's estimator needs from the data path (README "The scaling signal"): at each
/// arrival of a job (a connection in mode tcp, a request in mode http; not a retry) the count and
/// the inter-arrival gaps, at each slot release the count and the slot times (slot taken to
/// released: the service time 1/mu of the queueing model). Cumulative; sums and sums of squares,
/// so that the control plane gets means and coefficients of variation over any window from two
/// copies.
struct LoadSums {
  std::uint64_t arrivals = 0;
  std::uint64_t gaps = 0;          // inter-arrival gaps counted (one fewer than arrivals)
  double gap_seconds = 0;          // their sum
  double gap_squares = 0;          // and sum of squares (s^2)
  std::uint64_t completions = 0;   // slots released
  double slot_seconds = 0;         // sum of slot times
  double slot_squares = 0;         // and of their squares
  std::uint64_t last_arrival_ns = 0;  // 0: none yet

  void arrive(std::uint64_t now_ns) {
    ++arrivals;
    if (last_arrival_ns != 0 && now_ns >= last_arrival_ns) {
      const double gap = static_cast<double>(now_ns - last_arrival_ns) * 1e-9;
      ++gaps;
      gap_seconds += gap;
      gap_squares += gap * gap;
    }
    last_arrival_ns = now_ns;
  }
  void complete(double seconds) {
    ++completions;
    slot_seconds += seconds;
    slot_squares += seconds * seconds;
  }
  /// Sums over workers (last_arrival_ns is meaningless in a sum and is dropped).
  LoadSums& operator+=(const LoadSums& other) {
    arrivals += other.arrivals;
    gaps += other.gaps;
    gap_seconds += other.gap_seconds;
    gap_squares += other.gap_squares;
    completions += other.completions;
    slot_seconds += other.slot_seconds;
    slot_squares += other.slot_squares;
    last_arrival_ns = 0;
    return *this;
  }
};

struct ServiceStats {
  TimeIntegral queue_length;         // shared-mode FIFO length; value() is the gauge
  DurationHistogram queue_wait;      // accept to dispatch, every dispatched connection (0 = no wait)
  LoadSums load;                     // arrivals and slot times, for the scaling signal
};

struct BackendStats {
  std::uint64_t connections_total = 0;        // dispatched to it
  std::uint64_t connect_failures_total = 0;   // refused or timed out
  std::uint64_t resolve_failures_total = 0;   // failed DNS re-resolutions
  std::uint64_t state_changes_total = 0;      // up/down transitions
  std::uint64_t received_bytes_total = 0;     // from the backend
  std::uint64_t sent_bytes_total = 0;         // to the backend
  TimeIntegral active;                        // connections holding a slot; value() is the gauge
  TimeIntegral queue_length;                  // per_backend-mode FIFO length
  DurationHistogram queue_wait;               // of the connections it served
  DurationHistogram connect_time;             // TCP connect
  DurationHistogram session_time;             // connected to closed
  // mode: http
  std::array<std::uint64_t, 5> http_responses_total{};  // by status class: 1xx (index 0) .. 5xx
  std::uint64_t pool_reuses_total = 0;        // requests sent on a pooled (reused) connection
  std::uint32_t pool_open = 0;                // connections to it open now (in use or idle)
  std::uint32_t pool_idle = 0;                // of those, idle in the pool
};

}  // namespace sluice
