#include "sluice/metrics/scaling_metrics.hpp"

#include <array>
#include <optional>

namespace sluice {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using scaling::Assessment;

// One gauge: its name, help, and its value for a service (nullopt: no sample for that service).
struct Gauge {
  const char* name;
  const char* help;
  std::optional<double> (*value)(const Assessment& a);
};

std::optional<double> estimated(const Assessment& a, double value) {
  if (a.state == scaling::State::warming_up || !a.estimate) return std::nullopt;
  return value;
}

const std::array<Gauge, 10> kGauges = {{
    {"sluice_service_arrival_rate", "Arrivals per second over scaling.window (all workers): lambda.",
     [](const Assessment& a) { return estimated(a, a.estimate ? a.estimate->arrival_rate : 0); }},
    {"sluice_service_mean_service_seconds", "Mean slot time over scaling.window (slot taken to released): 1/mu.",
     [](const Assessment& a) { return estimated(a, a.estimate ? a.estimate->mean_service_seconds : 0); }},
    {"sluice_service_offered_load", "Offered load per worker, (lambda / workers) / mu, in erlangs.",
     [](const Assessment& a) { return estimated(a, a.offered_load); }},
    {"sluice_service_utilisation", "Utilisation of the slots up now, offered load / slots per worker.",
     [](const Assessment& a) { return a.recommendation ? a.recommendation->utilisation_now : std::nullopt; }},
    {"sluice_service_predicted_queue_wait_seconds",
     "Mean queue wait the model predicts at the slots up now; absent when utilisation >= 1 (no steady state).",
     [](const Assessment& a) { return a.recommendation ? a.recommendation->wait_now : std::nullopt; }},
    {"sluice_service_recommended_backends",
     "Backends the model needs for scaling.target_wait (and target_quantile), within min/max_backends.",
     [](const Assessment& a) {
       return a.recommendation ? std::optional<double>(a.recommendation->backends) : std::nullopt;
     }},
    {"sluice_service_recommended_slots", "Slots per worker the model needs for the target (c*).",
     [](const Assessment& a) {
       return a.recommendation ? std::optional<double>(a.recommendation->slots) : std::nullopt;
     }},
    {"sluice_service_arrival_cv", "Coefficient of variation of the inter-arrival times (1 for Poisson).",
     [](const Assessment& a) { return estimated(a, a.estimate ? a.estimate->arrival_cv : 0); }},
    {"sluice_service_service_cv", "Coefficient of variation of the slot times (1 for exponential service).",
     [](const Assessment& a) { return estimated(a, a.estimate ? a.estimate->service_cv : 0); }},
    {"sluice_service_scaling_corrected",
     "1 when the Allen-Cunneen G/G/c correction is applied (a CV far from 1), 0 for plain M/M/c.",
     [](const Assessment& a) {
       return a.recommendation ? std::optional<double>(a.recommendation->corrected ? 1 : 0) : std::nullopt;
     }},
}};

}  // namespace

std::vector<MetricFamily> scaling_families(const std::vector<Assessment>& services) {
  std::vector<MetricFamily> families;
  for (const Gauge& gauge : kGauges) {
    MetricFamily family{gauge.name, gauge.help, prometheus::MetricType::Gauge, {}};
    for (const Assessment& a : services) {
      const auto value = gauge.value(a);
      if (!value) continue;
      ClientMetric sample;
      sample.label = {{"service", a.service}};
      sample.gauge.value = *value;
      family.metric.push_back(std::move(sample));
    }
    if (!family.metric.empty()) families.push_back(std::move(family));  // empty ones left out, as elsewhere
  }
  return families;
}

}  // namespace sluice
