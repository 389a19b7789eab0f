#pragma once
// Runtime state of one backend: where it is and how loaded it is. Knows nothing of how bytes move.

#include <cstdint>
#include <string>

#include <sys/socket.h>

#include "sluice/config.hpp"

namespace sluice {

struct Backend {
  BackendConfig config;
  std::size_t index = 0;             // position in its service's list
  sockaddr_storage address{};        // resolved address that new connections go to
  std::string address_text;          // the same, as "ip:port" for logs

  std::uint32_t active_connections = 0;    // dispatched and not yet closed (includes connecting)
  std::uint64_t connections_total = 0;     // dispatched since start
  std::uint64_t connect_failures_total = 0;
};

}  // namespace sluice
