#include "sluice/scaling/assessment.hpp"

#include <stdexcept>
#include <string>

namespace sluice::scaling {

namespace {

double seconds(Millis duration) { return static_cast<double>(duration.count()) * 1e-3; }

std::string warming_reason(const std::optional<WindowEstimate>& e) {
  if (!e) return "no data yet";
  return "the window holds " + std::to_string(static_cast<long long>(e->span_seconds)) + " s and " +
         std::to_string(e->completions) + " completions; a model needs " +
         std::to_string(static_cast<int>(kMinSpanSeconds)) + " s and " + std::to_string(kMinCompletions);
}

}  // namespace

const char* to_string(State state) {
  switch (state) {
    case State::ok: return "ok";
    case State::warming_up: return "warming_up";
    case State::no_model: return "no_model";
  }
  return "?";
}

Assessment assess(std::string service, const ScalingConfig& config, const std::optional<WindowEstimate>& estimate,
                  std::uint32_t workers, const Capacity& capacity) {
  Assessment out;
  out.service = std::move(service);
  out.config = config;
  out.workers = workers == 0 ? 1 : workers;
  out.capacity = capacity;
  out.estimate = estimate;
  if (!estimate || !estimate->warm) {
    out.state = State::warming_up;
    out.reason = warming_reason(estimate);
    return out;
  }
  out.worker_arrival_rate = estimate->arrival_rate / out.workers;
  out.offered_load = out.worker_arrival_rate * estimate->mean_service_seconds;
  out.state = State::no_model;
  if (capacity.unlimited_up > 0 || config.slots_per_backend == 0) {
    out.reason = "a backend has max_connections 0 (unlimited): no slots to count, so no queue to model";
    return out;
  }
  RecommendInput in;
  in.lambda = out.worker_arrival_rate;
  in.mu = 1 / estimate->mean_service_seconds;
  in.current_slots = capacity.slots;
  in.variability = {estimate->arrival_cv, estimate->service_cv};
  in.target.mean_wait_seconds = seconds(config.target_wait);
  if (config.target_quantile) in.target.quantile = QuantileTarget{config.target_quantile->p, seconds(config.target_quantile->wait)};
  in.slots_per_backend = config.slots_per_backend;
  in.min_backends = config.min_backends;
  in.max_backends = config.max_backends;
  try {
    out.recommendation = recommend(in);
  } catch (const std::exception& error) {  // invalid_argument, or runtime_error beyond kMaxSlots
    out.reason = std::string("the model refused its inputs: ") + error.what();
    return out;
  }
  out.state = State::ok;
  return out;
}

}  // namespace sluice::scaling
