// sluice-loadgen's generator: an open-loop HTTP/1.1 client on one libuv loop.
//
// Open loop: the arrival times are drawn up front as a Poisson process (exponential gaps with mean
// 1/rate, seeded) and every request is sent at its arrival time whatever happened to earlier ones, so
// a slow system gets the same offered load as a fast one (a closed loop would slow down with it and
// hide the queue). Each record keeps the scheduled time beside the actual send time: their difference,
// the send lag, says how faithfully the schedule was kept.
//
// Timing below a millisecond: arrivals are scheduled on a timerfd-backed HrTimerQueue (nanosecond
// deadlines, tools/common/hr_timer.hpp), not on uv_timer_t (whole milliseconds). When the loop wakes
// late, every arrival already due is sent at once, in order, and the lag is recorded, never hidden.
// All times are uv_hrtime() nanoseconds (CLOCK_MONOTONIC), comparable with Python's time.monotonic_ns().
//
// Modes:
//   new-connection  one TCP connection per request ("Connection: close"); optionally half-closed after
//                   the request (--half-close), so the proxy can release the backend as soon as the
//                   response is through. Through an L4 balancer each request is then balanced.
//   persistent      K keep-alive connections opened before the first arrival; each request goes to one
//                   of them (--spread) and is written at once, pipelined behind any outstanding one, so
//                   the send time stays on schedule. A balancer then balances connections, not requests.

#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "profile.hpp"

namespace sluice::tools {

enum class LoadMode { new_connection, persistent };
enum class Spread { round_robin, random, idle_first };

struct LoadOptions {
  sockaddr_storage target{};           // resolved before the run (main.cpp: a name is looked up once)
  std::string target_text;
  LoadMode mode = LoadMode::new_connection;
  double rate = 0;                     // requests per second (Poisson)
  std::optional<RateProfile> profile;  // if set, lambda(t) instead of `rate` (profile.hpp)
  std::uint32_t connections = 1;       // persistent: K
  Spread spread = Spread::round_robin;
  std::uint64_t requests = 0;          // stop after this many arrivals (0: no bound)
  std::uint64_t duration_ns = 0;       // stop arrivals after this long (0: no bound)
  std::uint64_t seed = 1;
  std::uint64_t request_timeout_ns = 60'000'000'000ULL;  // no response by then: error "timeout"
  std::uint64_t drain_timeout_ns = 30'000'000'000ULL;    // after the last arrival, wait this long at most
  bool half_close = false;
  std::string path = "/";
  std::string host = "sluice";
};

enum class RequestError : std::uint8_t {
  none,
  connect_failed,  // the connect itself failed (refused, unreachable)
  closed,          // EOF before a complete response: turned away by the proxy (e.g. queue full)
  reset,           // ECONNRESET or another read/write error before a complete response
  timeout,         // no response within --request-timeout
  malformed,       // not an HTTP response
  unfinished,      // still open when the drain timeout ended the run
};
const char* error_name(RequestError error);

struct RequestRecord {
  std::uint64_t scheduled_ns = 0;  // the Poisson arrival time
  std::uint64_t sent_ns = 0;       // connect started (new-connection) or request written (persistent)
  std::uint64_t connected_ns = 0;  // new-connection: TCP connect done; persistent: 0
  std::uint64_t done_ns = 0;       // complete response read (0: none)
  std::int64_t service_ns = -1;    // from the backend's headers, -1 if absent
  std::int64_t backend_wait_ns = -1;
  std::int64_t service_elapsed_ns = -1;
  std::uint32_t connection = 0;    // persistent: connection index; new-connection: 0
  std::uint16_t status = 0;        // HTTP status, 0 without a response
  std::uint16_t local_port = 0;    // the client port of the connection that carried it
  std::int32_t backend = -1;       // index into LoadResult::backend_names, -1 if unknown
  RequestError error = RequestError::none;
};

struct LoadResult {
  std::uint64_t start_ns = 0;         // t = 0 of the Poisson schedule
  std::uint64_t arrivals_end_ns = 0;  // when the last arrival was sent
  std::uint64_t end_ns = 0;           // when the run ended (all answered or the drain timeout)
  std::vector<RequestRecord> records; // in arrival order
  std::vector<std::string> backend_names;  // "NAME node=NODE" is split: names here, nodes below
  std::vector<std::string> backend_nodes;
  bool interrupted = false;           // SIGINT / SIGTERM stopped the arrivals early
};

// Runs the whole experiment on a private loop. Throws std::runtime_error on setup failures (e.g. a
// persistent connection that cannot be opened).
LoadResult run_load(const LoadOptions& options);

}  // namespace sluice::tools
