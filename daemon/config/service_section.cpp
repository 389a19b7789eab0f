// A `services` item with its queue, health_check and backends.

#include <limits>

#include "sluice/config/config_parser.hpp"
#include "sluice/config/yaml_values.hpp"

namespace sluice::config_yaml {

namespace {

// `send_proxy`: the PROXY protocol version put first on backend connections, or off.
auto send_proxy_value() {
  return one_of<ProxyVersion>({{"off", ProxyVersion::off}, {"v1", ProxyVersion::v1}, {"v2", ProxyVersion::v2}});
}

// The slots of what a scaler adds: one more member of the service's backend sets when it has any
// (fixed backends do not scale), else one more backend like the fixed ones.
std::vector<std::uint32_t> scaled_slots(const ServiceConfig& service) {
  std::vector<std::uint32_t> slots;
  for (const BackendSetConfig& set : service.backend_sets) slots.push_back(set.max_connections);
  if (!slots.empty()) return slots;
  for (const BackendConfig& backend : service.backends) slots.push_back(backend.max_connections);
  return slots;
}

}  // namespace

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
  keys.read("send_proxy", service.send_proxy, send_proxy_value());
  if (const auto* queue = keys.find("queue");
      queue != nullptr && expect_map(queue->value, "queue of " + keys.context(), diag_)) {
    service.queue = parse_queue(queue->value, keys.context());
  }
  if (const auto* check = keys.find("health_check");
      check != nullptr && expect_map(check->value, "health_check of " + keys.context(), diag_)) {
    service.health_check = parse_health_check(check->value, keys.context());
  }
  // Fixed backends and sets share one name space: a set's members are named after their addresses.
  UniqueNames backend_names("backend");
  // `backends` may be left out when a set gives the service its backends.
  const bool has_sets = keys.find("backend_sets") != nullptr;
  const auto backends = keys.read_list("backends", has_sets ? Need::optional : Need::required, kMaxBackendsPerService);
  for (std::size_t i = 0; i < backends.size(); ++i) {
    std::string backend_context = "backend #" + std::to_string(i + 1) + " in " + keys.context();
    if (expect_map(backends[i], backend_context, diag_)) {
      service.backends.push_back(
          parse_backend(backends[i], backend_context, keys.context(), backend_names, service.send_proxy));
    }
  }
  const auto* sets_entry = keys.find("backend_sets");
  const auto sets = keys.read_list("backend_sets", Need::optional, kMaxBackendsPerService);
  std::size_t bound = service.backends.size();
  for (std::size_t i = 0; i < sets.size(); ++i) {
    std::string set_context = "backend set #" + std::to_string(i + 1) + " in " + keys.context();
    if (expect_map(sets[i], set_context, diag_)) {
      service.backend_sets.push_back(parse_backend_set(sets[i], set_context, keys.context(), backend_names, service.send_proxy));
      bound += service.backend_sets.back().max_backends;
    }
  }
  if (sets_entry != nullptr && sets_entry->value.IsSequence() && sets.empty() && backends.empty()) {
    diag_.error(sets_entry->where(), "backend_sets: must have at least one item when backends has none");
  }
  // The service's backends are bounded: fixed ones plus every set's max_backends.
  if (sets_entry != nullptr && bound > kMaxBackendsPerService) {
    diag_.error(sets_entry->where(), "backend_sets: backends plus the sets' max_backends come to " +
                                         std::to_string(bound) + ", more than " +
                                         std::to_string(kMaxBackendsPerService));
  }
  if (const auto* scaling = keys.find("scaling");
      scaling != nullptr && expect_map(scaling->value, "scaling of " + keys.context(), diag_)) {
    service.scaling = parse_scaling(scaling->value, keys.context(), scaled_slots(service));
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
                            UniqueNames& backend_names, ProxyVersion inherited) {
  BackendConfig backend;
  backend.send_proxy = inherited;
  KeyReader keys(map, std::move(context), diag_);
  read_item_name(keys, backend.name, name_value, "backend", " in " + service_context, backend_names, diag_);
  keys.read("address", backend.address, endpoint_value(Zero::refused), Need::required);
  keys.read("node", backend.node, string_value);
  keys.read("weight", backend.weight, uint_value(1, 1000));
  keys.read("max_connections", backend.max_connections,
            uint_value(0, std::numeric_limits<std::uint32_t>::max()));
  keys.read("send_proxy", backend.send_proxy, send_proxy_value());
  keys.finish();
  return backend;
}

BackendSetConfig ConfigParser::parse_backend_set(const YAML::Node& map, std::string context,
                                                 const std::string& service_context, UniqueNames& backend_names,
                                                 ProxyVersion inherited) {
  BackendSetConfig set;
  set.send_proxy = inherited;
  KeyReader keys(map, std::move(context), diag_);
  read_item_name(keys, set.name, name_value, "backend set", " in " + service_context, backend_names, diag_);
  keys.read("address", set.address, endpoint_value(Zero::refused), Need::required);
  keys.read("max_backends", set.max_backends, uint_value(1, kMaxBackendsPerService));
  keys.read("node", set.node, string_value);
  keys.read("weight", set.weight, uint_value(1, 1000));
  keys.read("max_connections", set.max_connections, uint_value(0, std::numeric_limits<std::uint32_t>::max()));
  keys.read("send_proxy", set.send_proxy, send_proxy_value());
  keys.finish();
  return set;
}

}  // namespace sluice::config_yaml
