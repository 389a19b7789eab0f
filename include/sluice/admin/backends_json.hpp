#pragma once
// The admin endpoint GET /backends: every service and backend with its node, addresses, state and
// load, as one JSON document for people and scripts (Prometheus has the same figures as metrics).

#include <cstdint>
#include <span>
#include <string>

#include "sluice/balancing/service.hpp"

namespace sluice {

/// `now_ns` is the loop clock (uv_hrtime) that state_since_ns is on; `unix_now_seconds` the wall
/// clock at the same moment, to turn "since" into a time a person can read.
std::string render_backends_json(std::span<const Service* const> services, std::uint64_t now_ns,
                                 double unix_now_seconds);

}  // namespace sluice
