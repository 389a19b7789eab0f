// A service's `scaling` section: the window and target of the scaling signal, and how slots make
// backends (README "The scaling signal").

#include <charconv>
#include <cmath>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

namespace {

constexpr Millis kMinWindow{10000};
constexpr Millis kMaxWindow{3600000};

// A probability strictly between 0 and 1, written as a decimal number (0.95).
std::optional<double> probability_value(const YAML::Node& value, std::string& why) {
  const std::string text = value.IsScalar() ? value.Scalar() : "";
  double number = 0;
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || parsed.ec != std::errc{} || parsed.ptr != text.data() + text.size() || !std::isfinite(number)) {
    why = "expected a number between 0 and 1 such as 0.95, got " + describe(value);
    return std::nullopt;
  }
  if (number <= 0 || number >= 1) {
    why = text + " is not strictly between 0 and 1";
    return std::nullopt;
  }
  return number;
}

auto window_value() {
  return [](const YAML::Node& value, std::string& why) -> std::optional<Millis> {
    auto window = duration_value(Zero::refused)(value, why);
    if (window && (*window < kMinWindow || *window > kMaxWindow)) {
      why = value.Scalar() + " is out of range 10s..1h";
      return std::nullopt;
    }
    return window;
  };
}

}  // namespace

ScalingConfig ConfigParser::parse_scaling(const YAML::Node& map, const std::string& service_context,
                                          const std::vector<BackendConfig>& backends) {
  ScalingConfig scaling;
  KeyReader keys(map, "scaling of " + service_context, diag_);
  keys.read("window", scaling.window, window_value());
  keys.read("target_wait", scaling.target_wait, duration_value(Zero::refused), Need::required);
  if (const auto* quantile = keys.find("target_quantile");
      quantile != nullptr && expect_map(quantile->value, "target_quantile of " + keys.context(), diag_)) {
    QuantileTargetConfig target;
    KeyReader quantile_keys(quantile->value, "target_quantile of " + keys.context(), diag_);
    quantile_keys.read("p", target.p, probability_value, Need::required);
    quantile_keys.read("wait", target.wait, duration_value(Zero::refused), Need::required);
    quantile_keys.finish();
    scaling.target_quantile = target;
  }
  keys.read("min_backends", scaling.min_backends, uint_value(0, ScalingConfig::kMaxBackends));
  const auto* max = keys.read("max_backends", scaling.max_backends, uint_value(1, ScalingConfig::kMaxBackends));
  const auto* slots = keys.read("slots_per_backend", scaling.slots_per_backend, uint_value(1, 1000000));
  keys.finish();

  if (scaling.min_backends > scaling.max_backends) {
    diag_.error(max != nullptr ? max->where() : map.Mark(),
                "max_backends: " + std::to_string(scaling.max_backends) + " is less than min_backends " +
                    std::to_string(scaling.min_backends));
  }
  if (slots == nullptr && !backends.empty()) {
    // By default one more backend brings what the configured ones have; they must agree on it.
    scaling.slots_per_backend = backends.front().max_connections;
    for (const BackendConfig& backend : backends) {
      if (backend.max_connections == scaling.slots_per_backend) continue;
      diag_.error(map.Mark(), "scaling of " + service_context +
                                  ": the backends' max_connections differ (" +
                                  std::to_string(scaling.slots_per_backend) + " and " +
                                  std::to_string(backend.max_connections) +
                                  "); set slots_per_backend to the slots one more backend brings");
      break;
    }
  }
  return scaling;
}

}  // namespace sluice::config_yaml
