// The Prometheus text exposition format as serialize_metrics() writes it (metrics/text_format).

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "sluice/metrics/text_format.hpp"

using namespace sluice;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

ClientMetric gauge(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric sample;
  sample.label = std::move(labels);
  sample.gauge.value = value;
  return sample;
}

ClientMetric counter(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric sample;
  sample.label = std::move(labels);
  sample.counter.value = value;
  return sample;
}

}  // namespace

TEST_CASE("text format: HELP, TYPE and one line per sample, label values escaped") {
  const std::vector<MetricFamily> families{
      {"sluice_x_total", "Counted.", MetricType::Counter,
       {counter(7, {{"service", "web"}, {"backend", "a\"b\\c\nd"}}), counter(0)}},
      {"sluice_y", "Help with a \\ and a\nnewline.", MetricType::Gauge, {gauge(0.5)}},
  };
  CHECK(serialize_metrics(families) ==
        "# HELP sluice_x_total Counted.\n"
        "# TYPE sluice_x_total counter\n"
        "sluice_x_total{service=\"web\",backend=\"a\\\"b\\\\c\\nd\"} 7\n"
        "sluice_x_total 0\n"
        "# HELP sluice_y Help with a \\\\ and a\\nnewline.\n"
        "# TYPE sluice_y gauge\n"
        "sluice_y 0.5\n");
}

TEST_CASE("text format: numbers as %.16g writes them, NaN and infinities as Prometheus spells them") {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<MetricFamily> families{
      {"g", "", MetricType::Gauge,
       {gauge(1e-7), gauge(1.0 / 3), gauge(9007199254740992.0), gauge(123456789), gauge(1e16), gauge(1796539141.13), gauge(-2),
        gauge(std::numeric_limits<double>::quiet_NaN()), gauge(inf), gauge(-inf)}},
  };
  CHECK(serialize_metrics(families) ==
        "# TYPE g gauge\n"
        "g 1e-07\n"
        "g 0.3333333333333333\n"
        "g 9007199254740992\n"
        "g 123456789\n"
        "g 1e+16\n"
        "g 1796539141.13\n"
        "g -2\n"
        "g NaN\n"
        "g +Inf\n"
        "g -Inf\n");
}

TEST_CASE("text format: a histogram is _count, _sum and cumulative buckets closed by le=+Inf") {
  ClientMetric sample;
  sample.label = {{"service", "web"}};
  sample.histogram.sample_count = 3;
  sample.histogram.sample_sum = 0.25;
  sample.histogram.bucket = {{1, 0.0001}, {2, 0.5}, {3, 60}};
  const std::vector<MetricFamily> families{{"h_seconds", "Waits.", MetricType::Histogram, {sample}}};
  CHECK(serialize_metrics(families) ==
        "# HELP h_seconds Waits.\n"
        "# TYPE h_seconds histogram\n"
        "h_seconds_count{service=\"web\"} 3\n"
        "h_seconds_sum{service=\"web\"} 0.25\n"
        "h_seconds_bucket{service=\"web\",le=\"0.0001\"} 1\n"
        "h_seconds_bucket{service=\"web\",le=\"0.5\"} 2\n"
        "h_seconds_bucket{service=\"web\",le=\"60\"} 3\n"
        "h_seconds_bucket{service=\"web\",le=\"+Inf\"} 3\n");
}

TEST_CASE("text format: the same text as prometheus-cpp's TextSerializer ") {
  // The writer replaced prometheus::TextSerializer: the two agree byte for byte, so the
  // exposition did not change for Prometheus, dashboards (le labels) or the tests.
  ClientMetric histogram;
  histogram.label = {{"service", "web"}, {"backend", "node-a"}};
  histogram.histogram.sample_count = 4;
  histogram.histogram.sample_sum = 1.5;
  histogram.histogram.bucket = {{0, 0.00025}, {1, 0.001}, {4, 30}, {4, std::numeric_limits<double>::infinity()}};
  ClientMetric untyped;
  untyped.untyped.value = 12;
  ClientMetric summary;
  summary.summary.sample_count = 2;
  summary.summary.sample_sum = 3;
  summary.summary.quantile = {{0.5, 1}, {0.99, 2}};
  const std::vector<MetricFamily> families{
      {"c_total", "A counter.", MetricType::Counter, {counter(123456789, {{"listener", "web-in"}}), counter(0.125)}},
      {"g", "A gauge.", MetricType::Gauge, {gauge(0.1), gauge(1e-07), gauge(42), gauge(1.0 / 3), gauge(2.5e20), gauge(-0.0)}},
      {"h_seconds", "A histogram.", MetricType::Histogram, {histogram}},
      {"u", "", MetricType::Untyped, {untyped}},
      {"s_seconds", "A summary.", MetricType::Summary, {summary}},
  };
  CHECK(serialize_metrics(families) == prometheus::TextSerializer{}.Serialize(families));
}
