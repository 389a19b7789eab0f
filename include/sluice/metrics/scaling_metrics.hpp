#pragma once
// The scaling signal's gauges (README "Metrics"), one sample per service with `scaling` once its
// window has enough data; the model's gauges only when there is a model.

#include <vector>

#include <prometheus/metric_family.h>

#include "sluice/scaling/assessment.hpp"

namespace sluice {

std::vector<prometheus::MetricFamily> scaling_families(const std::vector<scaling::Assessment>& services);

}  // namespace sluice
