// GET /backends: the JSON rendering of services and backends.

#include <doctest/doctest.h>

#include <array>

#include "sluice/admin/backends_json.hpp"

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;

}  // namespace

TEST_CASE("backends JSON: node, configured and resolved address, state since when, load and totals") {
  sluice::ServiceConfig config;
  config.name = "web";
  config.policy = sluice::PolicyKind::least_connections;
  config.backends = {sluice::BackendConfig{"node-a", {"10.0.0.1", 8000}, "minikube", 2, 8},
                     sluice::BackendConfig{"node-b", {"web-b.svc", 8000}, "", 1, 0}};
  sluice::Service service(config, 10 * kSecond);
  sluice::Backend& a = service.backends()[0];
  a.stats.active.add(10 * kSecond, 3);
  a.stats.connections_total = 7;
  a.stats.connect_failures_total = 1;
  a.stats.sent_bytes_total = 100;
  a.stats.received_bytes_total = 200;
  service.resolve_failed(service.backends()[1], "unknown node or service", 11 * kSecond);

  const std::array<const sluice::Service*, 1> services = {&service};
  const std::string json = sluice::render_backends_json(services, 12 * kSecond, 1'800'000'000.0);
  CHECK(json ==
        R"({"services":[{"name":"web","policy":"least_connections","queue_mode":"shared","queue_length":0,)"
        R"("backends":[)"
        R"({"name":"node-a","set":null,"node":"minikube","address":"10.0.0.1:8000","resolved":"10.0.0.1:8000",)"
        R"("state":"up","reason":"started","state_since_unix_seconds":1799999998.0,"state_seconds":2.0,)"
        R"("active_connections":3,"max_connections":8,"queue_length":0,"weight":2,"connections_total":7,)"
        R"("connect_failures_total":1,"resolve_failures_total":0,"state_changes_total":0,)"
        R"("sent_bytes_total":100,"received_bytes_total":200},)"
        R"({"name":"node-b","set":null,"node":null,"address":"web-b.svc:8000","resolved":null,"state":"down",)"
        R"("reason":"name not resolved: unknown node or service","state_since_unix_seconds":1799999998.0,)"
        R"("state_seconds":2.0,"active_connections":0,"max_connections":0,"queue_length":0,"weight":1,)"
        R"("connections_total":0,"connect_failures_total":0,"resolve_failures_total":1,)"
        R"("state_changes_total":0,"sent_bytes_total":0,"received_bytes_total":0}]}]})"
        "\n");
}

TEST_CASE("backends JSON: names are escaped, and invalid UTF-8 becomes U+FFFD instead of passing through") {
  sluice::ServiceConfig config;
  config.name = "web \"quoted\"\n\x01";
  config.backends = {sluice::BackendConfig{"bad-\xff\xfe-utf8", {"10.0.0.1", 8000}, "n\xc3\xa9", 1, 0}};
  sluice::Service service(config, 0);
  const std::array<const sluice::Service*, 1> services = {&service};
  const std::string json = sluice::render_backends_json(services, 0, 0.0);
  CHECK(json.find(R"("name":"web \"quoted\"\n\u0001")") != std::string::npos);
  CHECK(json.find("\"name\":\"bad-\xef\xbf\xbd\xef\xbf\xbd-utf8\"") != std::string::npos);
  CHECK(json.find("\"node\":\"n\xc3\xa9\"") != std::string::npos);  // valid UTF-8 kept as it is
  CHECK(json.find('\xff') == std::string::npos);
}
