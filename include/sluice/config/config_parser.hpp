#pragma once
// The schema of the config (README "Configuration"): one parse function per section, each in a file
// named for it (config.cpp has the top level; listener_section.cpp, service_section.cpp,
// log_admin_section.cpp the rest). A new top-level section is one more key read in
// ConfigParser::parse and one more parse_* function in a file of its own.

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/config/yaml_reader.hpp"

namespace sluice::config_yaml {

class ConfigParser {
 public:
  explicit ConfigParser(Diagnostics& diag) : diag_(diag) {}

  Config parse(const YAML::Node& root);

 private:
  // A listener's `service`, checked once every service name is known.
  struct ServiceReference {
    std::string listener_context;
    std::string service;
    YAML::Mark at;
  };

  LogConfig parse_log(const YAML::Node& map);                          // log_admin_section.cpp
  AdminConfig parse_admin(const YAML::Node& map);                      // log_admin_section.cpp
  HttpConfig parse_http(const YAML::Node& map);                        // http_section.cpp
  ListenerConfig parse_listener(const YAML::Node& map, std::string context);  // listener_section.cpp
  ServiceConfig parse_service(const YAML::Node& map, std::string context);    // service_section.cpp
  QueueConfig parse_queue(const YAML::Node& map, const std::string& service_context);
  HealthCheckConfig parse_health_check(const YAML::Node& map, const std::string& service_context);
  HttpCheckConfig parse_http_check(const YAML::Node& map, const std::string& check_context);
  // `scaled_slots`: the max_connections of what scaling adds (the sets' members, else the fixed backends).
  ScalingConfig parse_scaling(const YAML::Node& map, const std::string& service_context,  // scaling_section.cpp
                              const std::vector<std::uint32_t>& scaled_slots);
  // `inherited`: the service's send_proxy, which a backend or set takes unless it has its own.
  BackendConfig parse_backend(const YAML::Node& map, std::string context, const std::string& service_context,
                              UniqueNames& backend_names, ProxyVersion inherited);
  BackendSetConfig parse_backend_set(const YAML::Node& map, std::string context, const std::string& service_context,
                                     UniqueNames& backend_names, ProxyVersion inherited);
  void check_service_references();

  Diagnostics& diag_;
  UniqueNames listener_names_{"listener"};
  UniqueNames service_names_{"service"};
  std::vector<ServiceReference> service_references_;
};

}  // namespace sluice::config_yaml
