#pragma once
// The typed values of a config: each parser turns one YAML value into a T, or returns nullopt and
// says why in `why`. The caller prefixes the key, so `why` reads "expected ..., got ..." or states
// the rule broken.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/config/yaml_reader.hpp"

namespace sluice::config_yaml {

std::optional<std::string> string_value(const YAML::Node& value, std::string& why);
std::optional<std::string> name_value(const YAML::Node& value, std::string& why);
/// Listener names end up in metric labels and log lines, so they are kept to a plain alphabet.
std::optional<std::string> listener_name_value(const YAML::Node& value, std::string& why);
/// `workers`: a count, or `auto` (stored as 0) for one per core.
std::optional<std::uint32_t> workers_value(const YAML::Node& value, std::string& why);
std::optional<bool> bool_value(const YAML::Node& value, std::string& why);
std::optional<Cidr> cidr_value(const YAML::Node& value, std::string& why);
/// An HTTP status code or range: `200`, `200-399`.
std::optional<StatusRange> status_range_value(const YAML::Node& value, std::string& why);
/// A request target sent as is: starts with '/', visible ASCII only (no space or control character
/// that could end the request line early).
std::optional<std::string> http_path_value(const YAML::Node& value, std::string& why);
/// A header value sent as is (`Host`): not empty, visible ASCII only.
std::optional<std::string> header_value(const YAML::Node& value, std::string& why);

inline auto uint_value(std::uint32_t min, std::uint32_t max) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<std::uint32_t> {
    const std::string text = value.IsScalar() ? value.Scalar() : "";
    bool all_digits =
        !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!all_digits) {
      why = "expected a non-negative integer, got " + describe(value);
      return std::nullopt;
    }
    std::uint64_t number = 0;
    auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    if (result.ec != std::errc{} || number < min || number > max) {
      why = text + " is out of range " + std::to_string(min) + ".." + std::to_string(max);
      return std::nullopt;
    }
    return static_cast<std::uint32_t>(number);
  };
}


enum class Zero { allowed, refused };

inline auto duration_value(Zero zero) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<Millis> {
    auto duration = value.IsScalar() ? parse_duration(value.Scalar()) : std::nullopt;
    if (!duration) {
      why = "expected a duration such as 250ms, 2s, 1m or 1h, got " + describe(value);
      return std::nullopt;
    }
    if (zero == Zero::refused && duration->count() == 0) {
      why = "must be greater than 0, got " + describe(value);
      return std::nullopt;
    }
    return duration;
  };
}

inline auto endpoint_value(Zero port_zero) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<Endpoint> {
    if (!value.IsScalar()) {
      why = "expected an address host:port, got " + describe(value);
      return std::nullopt;
    }
    auto endpoint = parse_endpoint(value.Scalar(), &why);
    if (endpoint && endpoint->port == 0 && port_zero == Zero::refused) {
      why = "port 0 is not allowed here; use 1..65535";
      return std::nullopt;
    }
    return endpoint;
  };
}

template <class T>
auto one_of(std::vector<std::pair<std::string, T>> choices) {
  return [choices = std::move(choices)](const YAML::Node& value, std::string& why) -> std::optional<T> {
    std::vector<std::string> names;
    for (const auto& [name, result] : choices) {
      if (value.IsScalar() && value.Scalar() == name) return result;
      names.push_back(name);
    }
    std::string listed;
    for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;
    why = "expected one of " + listed + ", got " + describe(value);
    if (value.IsScalar()) why += did_you_mean(value.Scalar(), names);
    return std::nullopt;
  };
}

}  // namespace sluice::config_yaml
