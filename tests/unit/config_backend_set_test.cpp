// The `backend_sets` of a service (README "Configuration"): values, defaults, and each error with its place.

#include <doctest/doctest.h>

#include <string>

#include "sluice/config/config.hpp"

namespace {

std::string errors_of(const std::string& yaml) {
  sluice::ConfigResult result = sluice::parse_config(yaml, "t.yaml");
  std::string joined;
  for (const auto& error : result.errors) joined += error.to_string() + "\n";
  return joined;
}

// Line 6 is the service's name; `body` follows it.
std::string with_service(const std::string& body) {
  return "listeners:\n  - name: web\n    bind: 127.0.0.1:8080\n    service: web\nservices:\n  - name: web\n" + body;
}

}  // namespace

TEST_CASE("backend_sets: read with their defaults, mixed with fixed backends") {
  const std::string yaml = with_service(R"(    backends:
      - {name: node-a, address: 127.0.0.1:9001}
    backend_sets:
      - name: pool
        address: web-pool.sluice.svc.cluster.local:8000
        max_backends: 16
        weight: 3
        max_connections: 1
        node: minikube
      - name: other
        address: other.test:9000
)");
  sluice::ConfigResult result = sluice::parse_config(yaml, "t.yaml");
  REQUIRE(result.errors.empty());
  const sluice::ServiceConfig& service = result.config->services[0];
  REQUIRE(service.backend_sets.size() == 2);
  const sluice::BackendSetConfig& pool = service.backend_sets[0];
  CHECK(pool.name == "pool");
  CHECK(pool.address == sluice::Endpoint{"web-pool.sluice.svc.cluster.local", 8000});
  CHECK(pool.max_backends == 16);
  CHECK(pool.weight == 3);
  CHECK(pool.max_connections == 1);
  CHECK(pool.node == "minikube");
  const sluice::BackendSetConfig& other = service.backend_sets[1];
  CHECK(other.max_backends == 64);
  CHECK(other.weight == 1);
  CHECK(other.max_connections == 0);
  CHECK(other.node.empty());
}

TEST_CASE("backend_sets: backends may be left out when a set gives the service its backends") {
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: pool.test:8000}\n")) == "");
  CHECK(errors_of(with_service("    backend_sets: []\n")) ==
        "t.yaml:7:19: backend_sets: must have at least one item when backends has none\n");
  CHECK(errors_of(with_service("    retries: 1\n")) == "t.yaml:6:5: service 'web': missing required key 'backends'\n");
}

TEST_CASE("backend_sets: each bad value is named with its place") {
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: pool.test:8000, max_backends: 0}\n")) ==
        "t.yaml:8:61: max_backends: 0 is out of range 1..1024\n");
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: pool.test:8000, max_backends: 1025}\n")) ==
        "t.yaml:8:61: max_backends: 1025 is out of range 1..1024\n");
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: pool.test:8000, weight: 0}\n")) ==
        "t.yaml:8:55: weight: 0 is out of range 1..1000\n");
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: pool.test}\n")) ==
        "t.yaml:8:31: address: missing port (expected host:port)\n");
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool}\n")) ==
        "t.yaml:8:9: backend set 'pool' in service 'web': missing required key 'address'\n");
  CHECK(errors_of(with_service("    backend_sets:\n      - {name: pool, address: p.test:1, maxbackends: 2}\n")) ==
        "t.yaml:8:41: unknown key 'maxbackends' in backend set 'pool' in service 'web'; did you mean "
        "'max_backends'?\n");
  CHECK(errors_of(with_service("    backend_sets: pool\n")) == "t.yaml:7:19: backend_sets: expected a list, got 'pool'\n");
}

TEST_CASE("backend_sets: names unique across fixed backends and sets, the service's size bounded") {
  CHECK(errors_of(with_service(R"(    backends:
      - {name: pool, address: 127.0.0.1:9001}
    backend_sets:
      - {name: pool, address: pool.test:8000}
      - {name: pool, address: other.test:8000}
)")) == "t.yaml:10:16: duplicate backend name 'pool' (first defined at line 8)\n"
        "t.yaml:11:16: duplicate backend name 'pool' (first defined at line 8)\n");
  CHECK(errors_of(with_service(R"(    backends:
      - {name: a, address: 127.0.0.1:9001}
    backend_sets:
      - {name: p1, address: pool.test:8000, max_backends: 1000}
      - {name: p2, address: pool.test:8001, max_backends: 24}
)")) == "t.yaml:10:7: backend_sets: backends plus the sets' max_backends come to 1025, more than 1024\n");
}
