#pragma once
// The standard `process_*` metrics (as the Go and Java clients export them), read from /proc/self.
// Holds no state: safe to call from any thread.

#include <vector>

#include <prometheus/metric_family.h>

namespace sluice {

/// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
/// process_open_fds, process_max_fds, process_start_time_seconds. A value that cannot be read
/// (no /proc) is left out rather than reported as 0.
std::vector<prometheus::MetricFamily> collect_process_metrics();

/// sluice_log_lines_dropped_total (a full log queue) and sluice_log_lines_suppressed_total
/// (repeated warnings over one a second per key), from logging.hpp's counters.
std::vector<prometheus::MetricFamily> collect_log_metrics();

}  // namespace sluice
