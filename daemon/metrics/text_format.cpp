#include "sluice/metrics/text_format.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace sluice {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else if (value == std::trunc(value) && std::fabs(value) < 1e15 && !std::signbit(value)) {
    // Most samples are counts: as integers they print the same, without the float path.
    // Negative values and -0 (rare) take the float path below.
    char buffer[24];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
    out.append(buffer, result.ptr);
  } else {
    char buffer[32];
    // printf's %.16g, as prometheus::TextSerializer wrote it: histogram bounds are label values
    // (le="0.0001"), so their text must not change between versions.
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, 16);
    out.append(buffer, result.ptr);
  }
}

void append_number(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Label values escape backslash, double quote and newline; HELP texts backslash and newline.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  const bool plain = text.find('\\') == std::string_view::npos && text.find('\n') == std::string_view::npos &&
                     (!quote || text.find('"') == std::string_view::npos);  // memchr each: HELP texts are long
  if (plain) {
    out += text;  // the usual case: nothing to escape
    return;
  }
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// A sample line up to its value: name, suffix and labels (with `le` when given), then a space.
void append_head(std::string& out, const MetricFamily& family, const ClientMetric& sample,
                 std::string_view suffix, const double* le = nullptr) {
  out += family.name;
  out += suffix;
  if (!sample.label.empty() || le != nullptr) {
    char separator = '{';
    for (const auto& label : sample.label) {
      out += separator;
      out += label.name;
      out += "=\"";
      append_escaped(out, label.value, true);
      out += '"';
      separator = ',';
    }
    if (le != nullptr) {
      out += separator;
      out += "le=\"";
      append_number(out, *le);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

void append_tail(std::string& out, const ClientMetric& sample) {
  if (sample.timestamp_ms != 0) {
    out += ' ';
    out += std::to_string(sample.timestamp_ms);
  }
  out += '\n';
}

void append_count_and_sum(std::string& out, const MetricFamily& family, const ClientMetric& sample,
                          std::uint64_t count, double sum) {
  append_head(out, family, sample, "_count");
  append_number(out, count);
  append_tail(out, sample);
  append_head(out, family, sample, "_sum");
  append_number(out, sum);
  append_tail(out, sample);
}

void append_histogram(std::string& out, const MetricFamily& family, const ClientMetric& sample) {
  const auto& histogram = sample.histogram;
  append_count_and_sum(out, family, sample, histogram.sample_count, histogram.sample_sum);
  constexpr double infinity = std::numeric_limits<double>::infinity();
  double last = -infinity;
  for (const auto& bucket : histogram.bucket) {
    append_head(out, family, sample, "_bucket", &bucket.upper_bound);
    append_number(out, bucket.cumulative_count);
    append_tail(out, sample);
    last = bucket.upper_bound;
  }
  if (last != infinity) {
    append_head(out, family, sample, "_bucket", &infinity);
    append_number(out, histogram.sample_count);
    append_tail(out, sample);
  }
}

void append_summary(std::string& out, const MetricFamily& family, const ClientMetric& sample) {
  const auto& summary = sample.summary;
  append_count_and_sum(out, family, sample, summary.sample_count, summary.sample_sum);
  for (const auto& quantile : summary.quantile) {
    ClientMetric labelled = sample;
    std::string value;
    append_number(value, quantile.quantile);
    labelled.label.push_back({"quantile", value});
    append_head(out, family, labelled, "");
    append_number(out, quantile.value);
    append_tail(out, sample);
  }
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Summary: return "summary";
    case MetricType::Histogram: return "histogram";
    case MetricType::Untyped: break;
  }
  return "untyped";
}

void append_family(std::string& out, const MetricFamily& family) {
  if (!family.help.empty()) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    append_escaped(out, family.help, false);
    out += '\n';
  }
  out += "# TYPE ";
  out += family.name;
  out += ' ';
  out += type_name(family.type);
  out += '\n';
  for (const auto& sample : family.metric) {
    switch (family.type) {
      case MetricType::Histogram: append_histogram(out, family, sample); break;
      case MetricType::Summary: append_summary(out, family, sample); break;
      default:
        append_head(out, family, sample, "");
        append_number(out, family.type == MetricType::Counter ? sample.counter.value
                           : family.type == MetricType::Gauge ? sample.gauge.value
                                                              : sample.untyped.value);
        append_tail(out, sample);
        break;
    }
  }
}

}  // namespace

std::string serialize_metrics(const std::vector<MetricFamily>& families) {
  std::string out;
  out.reserve(16384);
  for (const auto& family : families) append_family(out, family);
  return out;
}

}  // namespace sluice
