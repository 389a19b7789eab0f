#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

std::optional<std::string> string_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected a string, got " + describe(value);
    return std::nullopt;
  }
  return value.Scalar();
}

std::optional<std::string> name_value(const YAML::Node& value, std::string& why) {
  auto name = string_value(value, why);
  if (name && name->empty()) {
    why = "must not be empty";
    return std::nullopt;
  }
  return name;
}

std::optional<std::string> listener_name_value(const YAML::Node& value, std::string& why) {
  auto name = name_value(value, why);
  auto is_allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  };
  if (name && !std::all_of(name->begin(), name->end(), is_allowed)) {
    why = "'" + *name + "' may only contain letters, digits, '_', '.' and '-'";
    return std::nullopt;
  }
  return name;
}

std::optional<std::uint32_t> workers_value(const YAML::Node& value, std::string& why) {
  if (value.IsScalar() && value.Scalar() == "auto") return 0;
  auto count = uint_value(1, Config::kMaxWorkers)(value, why);
  if (!count) why += " (or auto, one per core)";
  return count;
}

std::optional<bool> bool_value(const YAML::Node& value, std::string& why) {
  if (value.IsScalar() && (value.Scalar() == "true" || value.Scalar() == "false")) {
    return value.Scalar() == "true";
  }
  why = "expected true or false, got " + describe(value);
  return std::nullopt;
}

std::optional<Cidr> cidr_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected an address range such as 10.0.0.0/8, got " + describe(value);
    return std::nullopt;
  }
  return Cidr::parse(value.Scalar(), &why);
}

}  // namespace sluice::config_yaml
