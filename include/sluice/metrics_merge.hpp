#pragma once
// With `workers: N` every engine collects its own metric families; /metrics shows their sums
// (the README's metrics hold per worker, and sums of counters, time integrals and histograms are exact).
// Two gauges are not amounts and are not summed: sluice_backend_up is the minimum over workers (1
// only while every worker sends to the backend) and sluice_build_info the maximum.

#include <vector>

#include <prometheus/metric_family.h>

namespace sluice {

/// Adds `more` (another engine's families) into `total`, matching families by name and samples
/// by label set; what `total` lacks is appended.
void merge_metric_families(std::vector<prometheus::MetricFamily>& total,
                           const std::vector<prometheus::MetricFamily>& more);

}  // namespace sluice
