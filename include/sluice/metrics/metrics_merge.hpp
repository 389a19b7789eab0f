#pragma once
// With `workers: N` every worker collects its own metric families; /metrics shows their sums
// (the README's metrics hold per worker, and sums of counters, time integrals and histograms are exact).
// Two gauges are not amounts and are not summed: sluice_build_info is the maximum, and
// sluice_backend_up the minimum (the control plane alone reports it now, see MetricsPart, so
// there is nothing to combine; the rule keeps a gauge from ever being summed).

#include <vector>

#include <prometheus/metric_family.h>

namespace sluice {

/// Adds `more` (another worker's families) into `total`, matching families by name and samples
/// by label set; what `total` lacks is appended.
void merge_metric_families(std::vector<prometheus::MetricFamily>& total,
                           const std::vector<prometheus::MetricFamily>& more);

}  // namespace sluice
