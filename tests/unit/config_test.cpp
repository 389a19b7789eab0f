// The config contract (README "Configuration"): schema, defaults, and every error with its exact place.

#include "sluice/config/config.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using sluice::Config;
using sluice::ConfigResult;
using sluice::Millis;
using sluice::PolicyKind;

namespace {

// All errors of `yaml`, one "FILE:LINE:COL: message" per line, so a failure shows the whole list.
std::string errors_of(const std::string& yaml) {
  ConfigResult result = sluice::parse_config(yaml, "t.yaml");
  std::string joined;
  for (const auto& error : result.errors) joined += error.to_string() + "\n";
  return joined;
}

std::string lines(const std::vector<std::string>& errors) {
  std::string joined;
  for (const auto& error : errors) joined += error + "\n";
  return joined;
}

struct BrokenConfig {
  std::string what;
  std::string yaml;
  std::vector<std::string> errors;
};

// The smallest valid config; most broken cases below are this with one line changed or added.
const char* const minimal = R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)";

// `minimal` with one more line in its listener (line 5).
std::string minimal_with_listener_line(const std::string& line) {
  std::string yaml = minimal;
  yaml.insert(yaml.find("services:"), line);
  return yaml;
}

const std::vector<BrokenConfig> broken_configs = {
    {"empty file", "", {"t.yaml: config is empty"}},
    {"only comments", "# nothing here\n", {"t.yaml: config is empty"}},
    {"YAML syntax error: unclosed flow list",
     "listeners: [\n",
     {"t.yaml:2:1: YAML syntax error: end of sequence flow not found"}},
    {"YAML syntax error: bad indentation",
     "drain_timeout: 1s\n log: {}\n",
     {"t.yaml:2:5: YAML syntax error: illegal map value"}},
    {"two YAML documents",
     std::string(minimal) + "---\ndrain_timeout: 1s\n",
     {"t.yaml:11:1: only one YAML document is allowed; remove the second '---'"}},
    {"top level is a list", "- name: web\n", {"t.yaml:1:1: top level: expected a map, got a list"}},
    {"top level misses listeners and services",
     "drain_timeout: 1s\n",
     {"t.yaml:1:1: top level: missing required key 'listeners'",
      "t.yaml:1:1: top level: missing required key 'services'"}},
    {"unknown top-level key with a hint",
     std::string(minimal) + "drain_timout: 5s\n",
     {"t.yaml:10:1: unknown key 'drain_timout' in top level; did you mean 'drain_timeout'?"}},
    {"unknown top-level key without a hint",
     std::string(minimal) + "processes: 2\n",
     {"t.yaml:10:1: unknown key 'processes' in top level"}},
    {"unknown key in log",
     std::string(minimal) + "log:\n  level: info\n  fromat: json\n",
     {"t.yaml:12:3: unknown key 'fromat' in log; did you mean 'format'?"}},
    {"bad log format and access_log",
     std::string(minimal) + "log:\n  format: yaml\n  access_log: yes\n",
     {"t.yaml:11:11: format: expected one of text, json, got 'yaml'",
      "t.yaml:12:15: access_log: expected true or false, got 'yes'"}},
    {"admin without bind",
     std::string(minimal) + "admin: {}\n",
     {"t.yaml:10:8: admin: missing required key 'bind'"}},
    {"bad queue values",
     std::string(minimal) + "    queue:\n      mode: fifo\n      max_length: -1\n      timeout: 0s\n      size: 3\n",
     {"t.yaml:11:13: mode: expected one of shared, per_backend, got 'fifo'",
      "t.yaml:12:19: max_length: expected a non-negative integer, got '-1'",
      "t.yaml:13:16: timeout: must be greater than 0, got '0s'",
      "t.yaml:14:7: unknown key 'size' in queue of service 'web'"}},
    {"bad health_check values",
     std::string(minimal) +
         "    health_check:\n      enabled: maybe\n      interval: 1s\n      timeout: 2s\n      rise: 0\n"
         "      fall: 101\n      intervall: 3s\n",
     {"t.yaml:11:16: enabled: expected true or false, got 'maybe'",
      "t.yaml:13:16: timeout: 2000ms is longer than interval 1000ms",
      "t.yaml:14:13: rise: 0 is out of range 1..100",
      "t.yaml:15:13: fall: 101 is out of range 1..100",
      "t.yaml:16:7: unknown key 'intervall' in health_check of service 'web'; did you mean 'interval'?"}},
    {"health_check not a map, resolve_interval of zero",
     std::string(minimal) + "    health_check: on\n    resolve_interval: 0s\n",
     {"t.yaml:10:19: health_check of service 'web': expected a map, got 'on'",
      "t.yaml:11:23: resolve_interval: must be greater than 0, got '0s'"}},
    {"unknown key in listener with a hint",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    max_conections: 5
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:5: unknown key 'max_conections' in listener 'web'; did you mean 'max_connections'?"}},
    {"unknown key in service, swapped letters",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    polciy: round_robin
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:5: unknown key 'polciy' in service 'web'; did you mean 'policy'?"}},
    {"unknown key in backend",
     std::string(minimal) + "        max_conn: 8\n",
     {"t.yaml:10:9: unknown key 'max_conn' in backend 'a' in service 'web'"}},
    {"duplicate YAML key",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    bind: 127.0.0.1:8081
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:5: duplicate key 'bind' in listener 'web' (first at line 3)"}},
    {"workers: zero",
     std::string(minimal) + "workers: 0\n",
     {"t.yaml:10:10: workers: 0 is out of range 1..64 (or auto, one per core)"}},
    {"workers: a word other than auto",
     std::string(minimal) + "workers: all\n",
     {"t.yaml:10:10: workers: expected a non-negative integer, got 'all' (or auto, one per core)"}},
    {"workers: too many",
     std::string(minimal) + "workers: 65\n",
     {"t.yaml:10:10: workers: 65 is out of range 1..64 (or auto, one per core)"}},
    {"bad drain_timeout: fraction",
     std::string(minimal) + "drain_timeout: 2.5s\n",
     {"t.yaml:10:16: drain_timeout: expected a duration such as 250ms, 2s, 1m or 1h, got '2.5s'"}},
    {"bad connect_timeout: no unit",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    connect_timeout: 2
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:22: connect_timeout: expected a duration such as 250ms, 2s, 1m or 1h, got '2'"}},
    {"idle_timeout of zero",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    idle_timeout: 0s
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:19: idle_timeout: must be greater than 0, got '0s'"}},
    {"empty value points at its key",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    idle_timeout:
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:5: idle_timeout: expected a duration such as 250ms, 2s, 1m or 1h, got an empty value"}},
    {"bad log level",
     std::string(minimal) + "log: {level: verbose}\n",
     {"t.yaml:10:14: level: expected one of trace, debug, info, warn, error, got 'verbose'"}},
    {"log is not a map",
     std::string(minimal) + "log: debug\n",
     {"t.yaml:10:6: log: expected a map, got 'debug'"}},
    {"policy typo with a hint",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    policy: least_connection
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:13: policy: expected one of round_robin, least_connections, got 'least_connection'; "
      "did you mean 'least_connections'?"}},
    {"retries not a number",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    retries: abc
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:14: retries: expected a non-negative integer, got 'abc'"}},
    {"retries negative",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    retries: -1
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:14: retries: expected a non-negative integer, got '-1'"}},
    {"retries out of range",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    retries: 101
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:7:14: retries: 101 is out of range 0..100"}},
    {"weight zero and too large",
     std::string(minimal) + R"(        weight: 0
      - name: b
        address: 127.0.0.1:9001
        weight: 1001
)",
     {"t.yaml:10:17: weight: 0 is out of range 1..1000",
      "t.yaml:13:17: weight: 1001 is out of range 1..1000"}},
    {"backlog too large",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    backlog: 70000
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:14: backlog: 70000 is out of range 1..65535"}},
    {"splice not a boolean",
     minimal_with_listener_line("    splice: auto\n"),
     {"t.yaml:5:13: splice: expected true or false, got 'auto'"}},
    {"splice misspelt",
     minimal_with_listener_line("    splise: false\n"),
     {"t.yaml:5:5: unknown key 'splise' in listener 'web'; did you mean 'splice'?"}},
    {"max_connections zero",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    max_connections: 0
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:22: max_connections: 0 is out of range 1..4294967295"}},
    {"max_connections beyond 64 bits",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    max_connections: 99999999999999999999
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:22: max_connections: 99999999999999999999 is out of range 1..4294967295"}},
    {"map where an integer is expected",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    max_connections: {limit: 5}
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:22: max_connections: expected a non-negative integer, got a map"}},
    {"list where a string is expected",
     R"(listeners:
  - name: [web]
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:2:11: name: expected a string, got a list"}},
    {"listener name with a space",
     R"(listeners:
  - name: my web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:2:11: name: 'my web' may only contain letters, digits, '_', '.' and '-'"}},
    {"bind port out of range",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:70000
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:3:11: bind: port 70000 is out of range 0..65535"}},
    {"bind IPv6 without brackets",
     R"(listeners:
  - name: web
    bind: "::1:8080"
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:3:11: bind: IPv6 address must be in brackets, e.g. [::1]:8080"}},
    {"bind without port",
     R"(listeners:
  - name: web
    bind: 8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:3:11: bind: missing port (expected host:port)"}},
    {"bind to an impossible IPv4 address",
     R"(listeners:
  - name: web
    bind: 300.1.1.1:80
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:3:11: bind: '300.1.1.1' is not a valid IPv4 address"}},
    {"backend address with port 0",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:0
)",
     {"t.yaml:9:18: address: port 0 is not allowed here; use 1..65535"}},
    {"backend address with a bad host name",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: web/node:80
)",
     {"t.yaml:9:18: address: host name 'web/node' contains '/'; only letters, digits, '-', '_' and '.' are "
      "allowed"}},
    {"backend address with a bad IPv6 literal",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - name: a
        address: "[::g]:80"
)",
     {"t.yaml:9:18: address: '::g' is not a valid IPv6 address"}},
    {"allow: host bits set, prefix too long, not an address",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    allow:
      - 10.0.0.1/8
      - 10.0.0.0/33
      - banana
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:6:9: allow: '10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?",
      "t.yaml:7:9: allow: prefix length 33 is out of range 0..32",
      "t.yaml:8:9: allow: 'banana' is not a valid IPv4 address"}},
    {"allow is not a list",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    allow: 10.0.0.0/8
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:12: allow: expected a list, got '10.0.0.0/8'"}},
    {"unknown service with a hint",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: wbe
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:4:14: listener 'web' refers to unknown service 'wbe'; did you mean 'web'?"}},
    {"unknown service without a hint",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: checkout
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:4:14: listener 'web' refers to unknown service 'checkout'"}},
    {"duplicate listener name",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
  - name: web
    bind: 127.0.0.1:8081
    service: web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:5:11: duplicate listener name 'web' (first defined at line 2)"}},
    {"duplicate service name",
     std::string(minimal) + R"(  - name: web
    backends:
      - name: b
        address: 127.0.0.1:9001
)",
     {"t.yaml:10:11: duplicate service name 'web' (first defined at line 6)"}},
    {"duplicate backend name",
     std::string(minimal) + "      - name: a\n        address: 127.0.0.1:9001\n",
     {"t.yaml:10:15: duplicate backend name 'a' (first defined at line 8)"}},
    {"missing backends",
     R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    retries: 1
)",
     {"t.yaml:6:5: service 'web': missing required key 'backends'"}},
    {"missing names and addresses",
     R"(listeners:
  - bind: 127.0.0.1:8080
    service: web
services:
  - name: web
    backends:
      - node: n1
)",
     {"t.yaml:2:5: listener #1: missing required key 'name'",
      "t.yaml:7:9: backend #1 in service 'web': missing required key 'name'",
      "t.yaml:7:9: backend #1 in service 'web': missing required key 'address'"}},
    {"empty and wrongly typed lists",
     R"(listeners: []
services: {name: web}
)",
     {"t.yaml:1:12: listeners: must have at least one item",
      "t.yaml:2:11: services: expected a list, got a map"}},
    {"list item that is not a map",
     R"(listeners:
  - web
services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)",
     {"t.yaml:2:5: listener #1: expected a map, got 'web'"}},
    {"many errors, reported together in file order",
     R"(services:
  - name: web
    retries: lots
    backends:
      - name: a
        address: localhost
listeners:
  - name: web
    bind: 0.0.0.0:8080
    service: api
    idle_timeout: 5min
drain_timeout: -1s
extra: true
)",
     {"t.yaml:3:14: retries: expected a non-negative integer, got 'lots'",
      "t.yaml:6:18: address: missing port (expected host:port)",
      "t.yaml:10:14: listener 'web' refers to unknown service 'api'",
      "t.yaml:11:19: idle_timeout: expected a duration such as 250ms, 2s, 1m or 1h, got '5min'",
      "t.yaml:12:16: drain_timeout: expected a duration such as 250ms, 2s, 1m or 1h, got '-1s'",
      "t.yaml:13:1: unknown key 'extra' in top level"}},
};

}  // namespace

TEST_CASE("the minimal config is valid") {
  ConfigResult result = sluice::parse_config(minimal, "t.yaml");
  CHECK(errors_of(minimal) == "");
  CHECK(result.config.has_value());
}

TEST_CASE("broken configs: every error with its exact place") {
  CHECK(broken_configs.size() >= 30);
  for (const BrokenConfig& broken : broken_configs) {
    CAPTURE(broken.what);
    CHECK(errors_of(broken.yaml) == lines(broken.errors));
    CHECK_FALSE(sluice::parse_config(broken.yaml, "t.yaml").config.has_value());
  }
}

TEST_CASE("defaults are applied to everything left out") {
  ConfigResult result = sluice::parse_config(minimal, "t.yaml");
  REQUIRE(result.config.has_value());
  const Config& config = *result.config;

  CHECK(config.workers == 1);
  CHECK(config.drain_timeout == Millis(25000));
  CHECK(config.log.level == "info");

  REQUIRE(config.listeners.size() == 1);
  const auto& listener = config.listeners[0];
  CHECK(listener.max_connections == 10000);
  CHECK(listener.allow.empty());
  CHECK(listener.idle_timeout == Millis(5 * 60 * 1000));
  CHECK(listener.backlog == 511);
  CHECK(listener.splice);

  REQUIRE(config.services.size() == 1);
  const auto& service = config.services[0];
  CHECK(service.policy == PolicyKind::round_robin);
  CHECK(service.connect_timeout == Millis(2000));
  CHECK(service.retries == 2);
  CHECK(service.resolve_interval == Millis(10000));
  CHECK(service.health_check.enabled);
  CHECK(service.health_check.interval == Millis(2000));
  CHECK(service.health_check.timeout == Millis(1000));
  CHECK(service.health_check.rise == 2);
  CHECK(service.health_check.fall == 3);
  CHECK(!service.health_check.http.has_value());  // TCP connect checks

  REQUIRE(service.backends.size() == 1);
  CHECK(service.backends[0].node == "");
  CHECK(service.backends[0].weight == 1);
}

TEST_CASE("a full config file is read into the struct, every key") {
  ConfigResult result = sluice::load_config(std::string(SLUICE_SOURCE_DIR) + "/tests/unit/configs/full.yaml");
  CHECK(result.errors.empty());
  REQUIRE(result.config.has_value());
  const Config& config = *result.config;

  CHECK(config.workers == 0);  // auto
  CHECK(config.drain_timeout == Millis(40000));
  CHECK(config.log.level == "debug");

  REQUIRE(config.listeners.size() == 2);
  const auto& web = config.listeners[0];
  CHECK(web.name == "web");
  CHECK(web.bind.host == "0.0.0.0");
  CHECK(web.bind.port == 8080);
  CHECK(web.service == "web");
  CHECK(web.max_connections == 500);
  REQUIRE(web.allow.size() == 3);
  CHECK(web.allow[0].to_string() == "10.0.0.0/8");
  CHECK(web.allow[1].to_string() == "::/0");
  CHECK(web.allow[2].to_string() == "192.168.1.7/32");
  CHECK(web.idle_timeout == Millis(90000));
  CHECK(web.backlog == 1024);
  CHECK_FALSE(web.splice);

  const auto& admin = config.listeners[1];
  CHECK(admin.name == "admin.v6");
  CHECK(admin.bind.host == "::1");
  CHECK(admin.bind.port == 0);
  CHECK(admin.bind.to_string() == "[::1]:0");
  CHECK(admin.service == "api");
  CHECK(admin.splice);  // left out: on

  REQUIRE(config.services.size() == 2);
  const auto& service = config.services[0];
  CHECK(service.name == "web");
  CHECK(service.policy == PolicyKind::least_connections);
  CHECK(service.connect_timeout == Millis(250));
  CHECK(service.retries == 0);
  CHECK(service.resolve_interval == Millis(30000));
  CHECK(!service.health_check.enabled);
  CHECK(service.health_check.interval == Millis(500));
  CHECK(service.health_check.timeout == Millis(200));
  CHECK(service.health_check.rise == 1);
  CHECK(service.health_check.fall == 5);
  REQUIRE(service.health_check.http.has_value());
  CHECK(service.health_check.http->path == "/healthz?full=1");
  CHECK(service.health_check.http->host == "web.example");
  CHECK(service.health_check.http->expect == sluice::StatusRange{200, 204});
  REQUIRE(service.backends.size() == 2);
  CHECK(service.backends[0].name == "node-a");
  CHECK(service.backends[0].address.host == "web-node-a.default.svc.cluster.local");
  CHECK(service.backends[0].address.port == 8000);
  CHECK(service.backends[0].node == "minikube-m02");
  CHECK(service.backends[0].weight == 3);
  CHECK(service.backends[1].name == "node-b");
  CHECK(service.backends[1].address.to_string() == "[2001:db8::1]:8001");

  CHECK(config.find_service("api") == &config.services[1]);
  CHECK(config.find_service("web") == &config.services[0]);
  CHECK(config.find_service("nope") == nullptr);
}

TEST_CASE("flow style is the same config as block style") {
  ConfigResult result = sluice::parse_config(
      "{listeners: [{name: a, bind: '127.0.0.1:1', service: s}],"
      " services: [{name: s, backends: [{name: b, address: 'h:1'}]}]}",
      "t.yaml");
  CHECK(result.errors.empty());
  REQUIRE(result.config.has_value());
  CHECK(result.config->services[0].backends[0].address.host == "h");
}

TEST_CASE("limits: config size, listeners, services and backends per service") {
  const std::string huge = std::string(minimal) + "# " + std::string(sluice::kMaxConfigBytes, 'x') + "\n";
  CHECK(errors_of(huge) ==
        "t.yaml: config is " + std::to_string(huge.size()) + " bytes; at most 1048576 are allowed\n");

  std::string many = std::string(minimal);
  for (std::size_t i = 1; i < sluice::kMaxBackendsPerService + 1; ++i) {
    many += "      - { name: b" + std::to_string(i) + ", address: 127.0.0.1:9000 }\n";
  }
  CHECK(errors_of(many) == "t.yaml:8:7: backends: at most 1024 allowed, got 1025\n");

  ConfigResult unreadable = sluice::load_config("/dev/zero");
  REQUIRE(unreadable.errors.size() == 1);
  CHECK(unreadable.errors[0].to_string().find("bytes; at most 1048576 are allowed") != std::string::npos);
}

TEST_CASE("load_config names the file in every error") {
  SUBCASE("a missing file is one error without a place") {
    ConfigResult result = sluice::load_config("/nonexistent/sluice.yaml");
    CHECK_FALSE(result.config.has_value());
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].line == 0);
    CHECK(result.errors[0].to_string() ==
          "/nonexistent/sluice.yaml: cannot read config: No such file or directory");
  }
  SUBCASE("a directory cannot be read either") {
    ConfigResult result = sluice::load_config(SLUICE_SOURCE_DIR);
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].to_string() ==
          std::string(SLUICE_SOURCE_DIR) + ": cannot read config: Is a directory");
  }
}

TEST_CASE("ConfigError::to_string with and without a place") {
  CHECK(sluice::ConfigError{"a.yaml", 3, 7, "boom"}.to_string() == "a.yaml:3:7: boom");
  CHECK(sluice::ConfigError{"a.yaml", 0, 0, "boom"}.to_string() == "a.yaml: boom");
}
