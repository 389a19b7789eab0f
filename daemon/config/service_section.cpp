// A `services` item with its queue, health_check and backends.

#include <limits>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

ServiceConfig ConfigParser::parse_service(const YAML::Node& map, std::string context) {
  ServiceConfig service;
  KeyReader keys(map, std::move(context), diag_);
  read_item_name(keys, service.name, name_value, "service", "", service_names_, diag_);
  keys.read("policy", service.policy,
            one_of<PolicyKind>({{"round_robin", PolicyKind::round_robin},
                                {"least_connections", PolicyKind::least_connections}}));
  keys.read("connect_timeout", service.connect_timeout, duration_value(Zero::refused));
  keys.read("retries", service.retries, uint_value(0, 100));
  keys.read("resolve_interval", service.resolve_interval, duration_value(Zero::refused));
  if (const auto* queue = keys.find("queue");
      queue != nullptr && expect_map(queue->value, "queue of " + keys.context(), diag_)) {
    service.queue = parse_queue(queue->value, keys.context());
  }
  if (const auto* check = keys.find("health_check");
      check != nullptr && expect_map(check->value, "health_check of " + keys.context(), diag_)) {
    service.health_check = parse_health_check(check->value, keys.context());
  }
  UniqueNames backend_names("backend");
  const auto backends = keys.read_list("backends", Need::required, kMaxBackendsPerService);
  for (std::size_t i = 0; i < backends.size(); ++i) {
    std::string backend_context = "backend #" + std::to_string(i + 1) + " in " + keys.context();
    if (expect_map(backends[i], backend_context, diag_)) {
      service.backends.push_back(
          parse_backend(backends[i], backend_context, keys.context(), backend_names));
    }
  }
  if (const auto* scaling = keys.find("scaling");
      scaling != nullptr && expect_map(scaling->value, "scaling of " + keys.context(), diag_)) {
    service.scaling = parse_scaling(scaling->value, keys.context(), service.backends);
  }
  keys.finish();
  return service;
}

QueueConfig ConfigParser::parse_queue(const YAML::Node& map, const std::string& service_context) {
  QueueConfig queue;
  KeyReader keys(map, "queue of " + service_context, diag_);
  keys.read("mode", queue.mode,
            one_of<QueueMode>({{"shared", QueueMode::shared}, {"per_backend", QueueMode::per_backend}}));
  keys.read("max_length", queue.max_length, uint_value(0, 1000000));
  keys.read("timeout", queue.timeout, duration_value(Zero::refused));
  keys.finish();
  return queue;
}

HealthCheckConfig ConfigParser::parse_health_check(const YAML::Node& map, const std::string& service_context) {
  HealthCheckConfig check;
  KeyReader keys(map, "health_check of " + service_context, diag_);
  keys.read("enabled", check.enabled, bool_value);
  keys.read("interval", check.interval, duration_value(Zero::refused));
  const auto* timeout = keys.read("timeout", check.timeout, duration_value(Zero::refused));
  keys.read("rise", check.rise, uint_value(1, 100));
  keys.read("fall", check.fall, uint_value(1, 100));
  if (const auto* http = keys.find("http");
      http != nullptr && expect_map(http->value, "http of " + keys.context(), diag_)) {
    check.http = parse_http_check(http->value, keys.context());
  }
  keys.finish();
  // One check at a time per backend: a check still running when the next is due would overlap.
  if (check.timeout > check.interval) {
    diag_.error(timeout != nullptr ? timeout->where() : map.Mark(),
                "timeout: " + std::to_string(check.timeout.count()) + "ms is longer than interval " +
                    std::to_string(check.interval.count()) + "ms");
  }
  return check;
}

HttpCheckConfig ConfigParser::parse_http_check(const YAML::Node& map, const std::string& check_context) {
  HttpCheckConfig http;
  KeyReader keys(map, "http of " + check_context, diag_);
  keys.read("path", http.path, http_path_value);
  keys.read("host", http.host, header_value);
  keys.read("expect", http.expect, status_range_value);
  keys.finish();
  return http;
}

BackendConfig ConfigParser::parse_backend(const YAML::Node& map, std::string context, const std::string& service_context,
                            UniqueNames& backend_names) {
  BackendConfig backend;
  KeyReader keys(map, std::move(context), diag_);
  read_item_name(keys, backend.name, name_value, "backend", " in " + service_context, backend_names, diag_);
  keys.read("address", backend.address, endpoint_value(Zero::refused), Need::required);
  keys.read("node", backend.node, string_value);
  keys.read("weight", backend.weight, uint_value(1, 1000));
  keys.read("max_connections", backend.max_connections,
            uint_value(0, std::numeric_limits<std::uint32_t>::max()));
  keys.finish();
  return backend;
}

}  // namespace sluice::config_yaml
