#pragma once
// Runtime state of one backend: where it is and how loaded it is. Knows nothing of how bytes move.

#include <cstdint>
#include <string>

#include <sys/socket.h>

#include "sluice/config.hpp"
#include "sluice/stats.hpp"

namespace sluice {

struct Backend {
  BackendConfig config;
  std::size_t index = 0;             // position in its service's list
  sockaddr_storage address{};        // resolved address that new connections go to
  std::string address_text;          // the same, as "ip:port" for logs

  bool up = true;                    // healthy: may be given new connections
  BackendStats stats;                // stats.active.value(): connections holding a slot now

  std::uint32_t active_connections() const { return static_cast<std::uint32_t>(stats.active.value()); }
  bool has_free_slot() const {
    return config.max_connections == 0 || active_connections() < config.max_connections;
  }
};

}  // namespace sluice
