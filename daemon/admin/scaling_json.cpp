#include "sluice/admin/scaling_json.hpp"

#include <nlohmann/json.hpp>

namespace sluice {

namespace {

using json = nlohmann::ordered_json;  // fields in the documented order
using scaling::Assessment;

double seconds(Millis duration) { return static_cast<double>(duration.count()) * 1e-3; }

json or_null(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

const char* clamp_name(scaling::Clamp clamp) {
  switch (clamp) {
    case scaling::Clamp::none: return "none";
    case scaling::Clamp::min_backends: return "min_backends";
    case scaling::Clamp::max_backends: return "max_backends";
  }
  return "none";
}

json target_of(const ScalingConfig& config) {
  json target{{"wait_seconds", seconds(config.target_wait)}, {"quantile", nullptr}};
  if (config.target_quantile) {
    target["quantile"] = {{"p", config.target_quantile->p}, {"wait_seconds", seconds(config.target_quantile->wait)}};
  }
  return target;
}

json service_json(const Assessment& a) {
  const auto& e = a.estimate;
  const bool estimated = e.has_value() && a.state != scaling::State::warming_up;
  auto measured = [&](double value) { return estimated ? json(value) : json(nullptr); };
  json out{
      {"service", a.service},
      {"state", scaling::to_string(a.state)},
      {"reason", a.reason},
      {"window_seconds", seconds(a.config.window)},
      {"span_seconds", e ? json(e->span_seconds) : json(nullptr)},
      {"workers", a.workers},
      {"arrivals", e ? json(e->arrivals) : json(nullptr)},
      {"completions", e ? json(e->completions) : json(nullptr)},
      {"arrival_rate", measured(e ? e->arrival_rate : 0)},
      {"worker_arrival_rate", measured(a.worker_arrival_rate)},
      {"mean_service_seconds", measured(e ? e->mean_service_seconds : 0)},
      {"arrival_cv", measured(e ? e->arrival_cv : 0)},
      {"service_cv", measured(e ? e->service_cv : 0)},
      {"slots", a.capacity.slots},
      {"backends_up", a.capacity.backends_up},
      {"offered_load", measured(a.offered_load)},
      {"target", target_of(a.config)},
      {"slots_per_backend", a.config.slots_per_backend},
      {"min_backends", a.config.min_backends},
      {"max_backends", a.config.max_backends},
  };
  const auto& r = a.recommendation;
  out["utilisation"] = r ? or_null(r->utilisation_now) : json(nullptr);
  out["model"] = r ? json(r->corrected ? "G/G/c (Allen-Cunneen)" : "M/M/c") : json(nullptr);
  out["correction_factor"] = r ? json(r->factor) : json(nullptr);
  out["erlang_c"] = r ? or_null(r->erlang_c_now) : json(nullptr);
  out["predicted_queue_wait_seconds"] = r ? or_null(r->wait_now) : json(nullptr);
  out["predicted_quantile_wait_seconds"] = r ? or_null(r->quantile_wait_now) : json(nullptr);
  out["recommended_slots"] = r ? json(r->slots) : json(nullptr);
  out["recommended_backends"] = r ? json(r->backends) : json(nullptr);
  out["clamped"] = r ? json(clamp_name(r->clamp)) : json(nullptr);
  out["at_recommended"] = r ? json{{"utilisation", r->utilisation},
                                   {"erlang_c", r->erlang_c},
                                   {"predicted_queue_wait_seconds", r->wait},
                                   {"predicted_quantile_wait_seconds", or_null(r->quantile_wait)}}
                            : json(nullptr);
  return out;
}

}  // namespace

std::string render_scaling_json(const std::vector<Assessment>& services) {
  json list = json::array();
  for (const Assessment& a : services) list.push_back(service_json(a));
  return json{{"services", std::move(list)}}.dump() + "\n";
}

}  // namespace sluice
