#include "sluice/metrics/metrics_merge.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

namespace sluice {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

enum class Combine { sum, min, max };

Combine combine_for(const std::string& family) {
  if (family == "sluice_backend_up") return Combine::min;
  if (family == "sluice_build_info") return Combine::max;
  return Combine::sum;
}

double combined(double a, double b, Combine how) {
  switch (how) {
    case Combine::min: return std::min(a, b);
    case Combine::max: return std::max(a, b);
    case Combine::sum: break;
  }
  return a + b;
}

void add_sample(ClientMetric& total, const ClientMetric& more, MetricType type, Combine how,
                const std::string& family) {
  switch (type) {
    case MetricType::Counter:
      total.counter.value += more.counter.value;
      return;
    case MetricType::Gauge:
      total.gauge.value = combined(total.gauge.value, more.gauge.value, how);
      return;
    case MetricType::Histogram: {
      auto& buckets = total.histogram.bucket;
      const auto& other = more.histogram.bucket;
      const bool same_bounds = buckets.size() == other.size() &&
                               std::equal(buckets.begin(), buckets.end(), other.begin(),
                                          [](const auto& a, const auto& b) { return a.upper_bound == b.upper_bound; });
      if (!same_bounds) throw std::logic_error("metrics: " + family + " has different buckets in two workers");
      total.histogram.sample_count += more.histogram.sample_count;
      total.histogram.sample_sum += more.histogram.sample_sum;
      for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i].cumulative_count += other[i].cumulative_count;
      return;
    }
    default:
      throw std::logic_error("metrics: " + family + " has a type that workers cannot merge");
  }
}

}  // namespace

void merge_metric_families(std::vector<MetricFamily>& total, const std::vector<MetricFamily>& more) {
  for (const MetricFamily& family : more) {
    auto into = std::find_if(total.begin(), total.end(), [&](const MetricFamily& f) { return f.name == family.name; });
    if (into == total.end()) {
      total.push_back(family);
      continue;
    }
    const Combine how = combine_for(family.name);
    // Workers running the same config list the same samples in the same order: then sample i
    // adds to sample i, with no index to build (a scrape merges every family this way).
    const bool aligned = into->metric.size() == family.metric.size() &&
                         std::equal(family.metric.begin(), family.metric.end(), into->metric.begin(),
                                    [](const ClientMetric& a, const ClientMetric& b) { return a.label == b.label; });
    if (aligned) {
      for (std::size_t i = 0; i < family.metric.size(); ++i) {
        add_sample(into->metric[i], family.metric[i], family.type, how, family.name);
      }
      continue;
    }
    // Otherwise by label set, not by a scan: a large config has thousands of samples per family.
    std::map<std::vector<ClientMetric::Label>, std::size_t> index;
    for (std::size_t i = 0; i < into->metric.size(); ++i) index.emplace(into->metric[i].label, i);
    for (const ClientMetric& sample : family.metric) {
      auto same = index.find(sample.label);
      if (same == index.end()) {
        into->metric.push_back(sample);
      } else {
        add_sample(into->metric[same->second], sample, family.type, how, family.name);
      }
    }
  }
}

}  // namespace sluice
