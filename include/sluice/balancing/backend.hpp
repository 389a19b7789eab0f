#pragma once
// Runtime state of one backend: where it is, whether it is healthy and how loaded it is. Knows
// nothing of how bytes move. The Service changes it; everyone else reads it.

#include <cstdint>
#include <string>

#include <sys/socket.h>

#include "sluice/config/config.hpp"
#include "sluice/health/health_state.hpp"
#include "sluice/metrics/stats.hpp"

namespace sluice {

struct Backend {
  Backend(BackendConfig config_in, std::size_t index_in, const HealthCheckConfig& check)
      : config(std::move(config_in)), index(index_in), health(check.rise, check.fall, /*up=*/true) {}

  BackendConfig config;
  std::size_t index = 0;             // position in its service's list

  bool has_address = false;          // false until the name first resolves
  sockaddr_storage address{};        // the address new connections go to
  std::string address_text;          // the same, as "ip:port" ("" without an address)
  bool resolve_failing = false;      // the last resolution failed (the address above is kept)

  HealthState health;                // rise/fall over checks and connects
  bool up = false;                   // may be given new connections: has an address and is healthy
  std::uint64_t state_since_ns = 0;  // when `up` last changed (or the service started)
  std::string state_reason = "starting";  // why it is in that state, for logs and /backends
  // A worker's follower: the monitor has failures in a row pending for it, so a passed client
  // connect must be reported too (otherwise only failures are, and a healthy backend costs no
  // message per connection).
  bool report_passes = false;

  BackendStats stats;                // stats.active.value(): connections holding a slot now

  std::uint32_t active_connections() const { return static_cast<std::uint32_t>(stats.active.value()); }
  bool has_free_slot() const {
    return config.max_connections == 0 || active_connections() < config.max_connections;
  }
};

}  // namespace sluice
