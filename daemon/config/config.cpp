#include "sluice/config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/dns_config.hpp"
#include "sluice/config/yaml_stall.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice {

namespace config_yaml {

Config ConfigParser::parse(const YAML::Node& root) {
  Config config;
  KeyReader keys(root, "top level", diag_);
  keys.read("workers", config.workers, workers_value);
  keys.read("drain_timeout", config.drain_timeout, duration_value(Zero::allowed));
  if (const auto* log = keys.find("log"); log != nullptr && expect_map(log->value, "log", diag_)) {
    config.log = parse_log(log->value);
  }
  if (const auto* admin = keys.find("admin"); admin != nullptr && expect_map(admin->value, "admin", diag_)) {
    config.admin = parse_admin(admin->value);
  }
  if (const auto* dns = keys.find("dns"); dns != nullptr && expect_map(dns->value, "dns", diag_)) {
    KeyReader dns_keys(dns->value, "dns", diag_);  // the values: config/dns_config.hpp
    for (const YAML::Node& item : dns_keys.read_list("servers", Need::optional)) {
      std::string why;  // each bad item at its own line
      if (auto server = dns_server_value(item, why)) config.dns.servers.push_back(*server);
      else diag_.error(item.Mark(), "servers: " + why);
    }
    dns_keys.read("timeout", config.dns.timeout, duration_value(Zero::refused));
    dns_keys.finish();
  }
  if (const auto* http = keys.find("http"); http != nullptr && expect_map(http->value, "http", diag_)) {
    config.http = parse_http(http->value);
  }
  const auto listeners = keys.read_list("listeners", Need::required, kMaxListeners);
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    std::string context = "listener #" + std::to_string(i + 1);
    if (expect_map(listeners[i], context, diag_)) {
      config.listeners.push_back(parse_listener(listeners[i], context));
    }
  }
  const auto services = keys.read_list("services", Need::required, kMaxServices);
  for (std::size_t i = 0; i < services.size(); ++i) {
    std::string context = "service #" + std::to_string(i + 1);
    if (expect_map(services[i], context, diag_)) {
      config.services.push_back(parse_service(services[i], context));
    }
  }
  keys.finish();
  check_service_references();
  for (ListenerConfig& listener : config.listeners) listener.http = config.http;  // what a listener runs with
  return config;
}

void ConfigParser::check_service_references() {
  for (const ServiceReference& reference : service_references_) {
    if (!service_names_.contains(reference.service)) {
      diag_.error(reference.at, reference.listener_context + " refers to unknown service '" +
                                    reference.service + "'" +
                                    did_you_mean(reference.service, service_names_.names()));
    }
  }
}

}  // namespace config_yaml

namespace {

using config_yaml::Diagnostics;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// The whole file, or nullopt with errno's text in `error`.
std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char chunk[8192];
  // One byte past the limit is enough for parse_config to reject it (and /dev/zero ends here).
  while (text.size() <= kMaxConfigBytes) {
    const std::size_t n = std::fread(chunk, 1, sizeof chunk, file.get());
    if (n == 0) break;
    text.append(chunk, n);
  }
  if (std::ferror(file.get())) {  // e.g. EISDIR: fopen succeeds on a directory, reading fails
    error = std::strerror(errno);
    return std::nullopt;
  }
  return text;
}

// yaml-cpp 0.7's LoadAll never returns on a ',' at document level (e.g. "{...}," a flow-style

}  // namespace

const ServiceConfig* Config::find_service(std::string_view name) const {
  auto it =
      std::find_if(services.begin(), services.end(), [&](const ServiceConfig& s) { return s.name == name; });
  return it != services.end() ? &*it : nullptr;
}

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult parse_config(std::string_view yaml_text, const std::string& file_name) {
  Diagnostics diag(file_name);
  Config config;
  if (yaml_text.size() > kMaxConfigBytes) {
    diag.error_without_place("config is " + std::to_string(yaml_text.size()) + " bytes; at most " +
                             std::to_string(kMaxConfigBytes) + " are allowed");
    ConfigResult result;
    result.errors = diag.take_in_file_order();
    return result;
  }
  try {
    const std::string text(yaml_text);
    std::vector<YAML::Node> documents;
    if (auto at = loadall_stall(text)) {
      diag.error(*at, "YAML syntax error: unexpected ',' outside a flow collection");
    } else {
      documents = YAML::LoadAll(text);
    }
    if (!diag.empty()) {
      // the stray token is the one error
    } else if (documents.empty() || documents.front().IsNull()) {
      diag.error_without_place("config is empty");
    } else if (documents.size() > 1) {
      diag.error(documents[1].Mark(), "only one YAML document is allowed; remove the second '---'");
    } else if (config_yaml::expect_map(documents.front(), "top level", diag)) {
      config = config_yaml::ConfigParser(diag).parse(documents.front());
    }
  } catch (const YAML::ParserException& e) {
    diag.error(e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {  // not expected from the calls above; never let one escape
    diag.error(e.mark, "YAML error: " + e.msg);
  }

  ConfigResult result;
  if (diag.empty()) result.config = std::move(config);
  result.errors = diag.take_in_file_order();
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::string error;
  std::optional<std::string> text = read_file(path, error);
  if (!text) {
    ConfigResult result;
    result.errors.push_back({path, 0, 0, "cannot read config: " + error});
    return result;
  }
  return parse_config(*text, path);
}

}  // namespace sluice