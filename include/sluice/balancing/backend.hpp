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
  // A member of a backend set (every record of a name): the set's name, "" for a fixed backend.
  std::string set;
  // Its address left the set's records: no new connection or request; removed once none holds a slot.
  bool draining = false;
  // A free entry (drained, or never used again): listed nowhere, dispatched to by no one. Reused
  // for a set's next member once no BackendHold names it.
  bool removed = false;
  std::uint32_t holders = 0;         // BackendHolds that name it (see below)

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

/// A pointer to a backend kept after its slot is released (the access log's "served by"): while
/// one is held, a removed set member's entry is not reused for another address.
class BackendHold {
 public:
  BackendHold() = default;
  BackendHold(const BackendHold&) = delete;
  BackendHold& operator=(const BackendHold&) = delete;
  ~BackendHold() { reset(nullptr); }

  void reset(Backend* backend) {
    if (backend_ != nullptr) --backend_->holders;
    backend_ = backend;
    if (backend_ != nullptr) ++backend_->holders;
  }
  Backend* get() const { return backend_; }

 private:
  Backend* backend_ = nullptr;
};

}  // namespace sluice
