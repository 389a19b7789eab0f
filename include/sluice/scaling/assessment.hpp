#pragma once
// A service's scaling signal at one instant: the window's estimates, the slots in service now, and
// the model's recommendation from them (or why there is none). Pure: the control plane fills in
// what it measured and renders the result as gauges (metrics/scaling_metrics) and as GET /scaling
// (admin/scaling_json).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/scaling/estimator.hpp"
#include "sluice/scaling/recommend.hpp"

namespace sluice::scaling {

/// The backends that are up now and the slots they give one worker.
struct Capacity {
  std::uint32_t backends_up = 0;
  std::uint32_t slots = 0;             // sum of their max_connections
  std::uint32_t unlimited_up = 0;      // of those, with max_connections 0 (no slots to count)
};

enum class State { ok, warming_up, no_model };
const char* to_string(State state);

struct Assessment {
  std::string service;
  State state = State::warming_up;
  std::string reason;                  // why warming up or no model ("" when ok)
  ScalingConfig config;
  std::uint32_t workers = 1;
  Capacity capacity;
  std::optional<WindowEstimate> estimate;
  double worker_arrival_rate = 0;      // lambda / workers: each worker is its own queue
  double offered_load = 0;             // a = (lambda / workers) x mean slot time, per worker
  std::optional<Recommendation> recommendation;  // set when state is ok
};

/// The model applied: each of `workers` workers is an M/M/c (or G/G/c) queue with lambda/N arrivals
/// per second and `capacity.slots` slots.
Assessment assess(std::string service, const ScalingConfig& config, const std::optional<WindowEstimate>& estimate,
                  std::uint32_t workers, const Capacity& capacity);

}  // namespace sluice::scaling
