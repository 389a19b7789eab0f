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

std::optional<StatusRange> status_range_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected a status code or a range such as 200-399, got " + describe(value);
    return std::nullopt;
  }
  return parse_status_range(value.Scalar(), &why);
}

namespace {

// The first character outside 0x21..0x7e, or npos.
std::size_t first_invisible(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c <= 0x20 || c >= 0x7f) return i;
  }
  return std::string::npos;
}

// The text, or the reason it cannot go into a request head as it is.
std::optional<std::string> visible_ascii(std::optional<std::string> text, std::string& why) {
  if (!text) return text;
  if (const auto at = first_invisible(*text); at != std::string::npos) {
    why = "'" + *text + "' has a space, control or non-ASCII character at offset " + std::to_string(at);
    return std::nullopt;
  }
  return text;
}

}  // namespace

std::optional<std::string> http_path_value(const YAML::Node& value, std::string& why) {
  auto path = string_value(value, why);
  if (path && (path->empty() || path->front() != '/')) {
    why = "must start with '/', got " + describe(value);
    return std::nullopt;
  }
  return visible_ascii(std::move(path), why);
}

std::optional<std::string> header_value(const YAML::Node& value, std::string& why) {
  return visible_ascii(name_value(value, why), why);
}

}  // namespace sluice::config_yaml
