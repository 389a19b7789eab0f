#pragma once
// The Prometheus text exposition format (version 0.0.4), written straight into one string. A
// scrape runs on the control plane, which shares the machine's cores with the data workers, so
// this is its hot part: numbers go through std::to_chars instead of an ostream and printf, which
// made prometheus::TextSerializer about 70 % of a scrape's CPU. The text is the same as before.

#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

namespace sluice {

/// Content type of the Prometheus text exposition format that serialize_metrics() writes.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// The text exposition format of `families`: HELP (backslash and newline escaped), TYPE, one line
/// per sample; histograms as _count, _sum and cumulative _bucket lines ending with le="+Inf".
/// Counter names are written as given, so the families carry their `_total` suffix themselves.
/// Values as printf's %.16g writes them (prometheus-cpp's form); NaN, +Inf and -Inf as Prometheus
/// spells them.
std::string serialize_metrics(const std::vector<prometheus::MetricFamily>& families);

}  // namespace sluice
