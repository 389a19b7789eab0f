// The PROXY protocol keys of the config: send_proxy per service, backend and backend set (the
// service's value inherited), accept_proxy and its timeout per listener, and their errors.

#include <doctest/doctest.h>

#include <string>

#include "sluice/config/config.hpp"

using sluice::ConfigResult;
using sluice::Millis;
using sluice::ProxyVersion;

namespace {

std::string errors_of(const ConfigResult& result) {
  std::string joined;
  for (const auto& error : result.errors) joined += error.to_string() + "\n";
  return joined;
}

}  // namespace

TEST_CASE("config: send_proxy is off unless set, and a backend or set takes the service's unless it says") {
  const ConfigResult result = sluice::parse_config(R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    accept_proxy: true
    accept_proxy_timeout: 2s
  - name: plain
    bind: 127.0.0.1:8081
    service: plain
services:
  - name: web
    send_proxy: v2
    backends:
      - name: a
        address: 127.0.0.1:9000
      - name: b
        address: 127.0.0.1:9001
        send_proxy: v1
      - name: c
        address: 127.0.0.1:9002
        send_proxy: off
    backend_sets:
      - name: pods
        address: 127.0.0.1:9003
      - name: v1-pods
        address: 127.0.0.1:9004
        send_proxy: v1
  - name: plain
    backends:
      - name: a
        address: 127.0.0.1:9000
)", "t.yaml");
  REQUIRE_MESSAGE(result.config.has_value(), errors_of(result));
  const auto& web = result.config->services[0];
  CHECK(web.send_proxy == ProxyVersion::v2);
  CHECK(web.backends[0].send_proxy == ProxyVersion::v2);
  CHECK(web.backends[1].send_proxy == ProxyVersion::v1);
  CHECK(web.backends[2].send_proxy == ProxyVersion::off);
  CHECK(web.backend_sets[0].send_proxy == ProxyVersion::v2);
  CHECK(web.backend_sets[1].send_proxy == ProxyVersion::v1);
  const auto& plain = result.config->services[1];
  CHECK(plain.send_proxy == ProxyVersion::off);
  CHECK(plain.backends[0].send_proxy == ProxyVersion::off);
  CHECK(result.config->listeners[0].accept_proxy);
  CHECK(result.config->listeners[0].accept_proxy_timeout == Millis(2000));
  CHECK_FALSE(result.config->listeners[1].accept_proxy);
  CHECK(result.config->listeners[1].accept_proxy_timeout == Millis(5000));
  CHECK(result.config->listeners[0].accept_proxy_from.empty());
}

TEST_CASE("config: accept_proxy_from lists the trusted fronts, and needs accept_proxy") {
  const ConfigResult good = sluice::parse_config(R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    accept_proxy: true
    accept_proxy_from: [10.0.0.0/8, "2001:db8::1"]
services:
  - name: web
    backends: [{ name: a, address: "127.0.0.1:9000" }]
)", "t.yaml");
  REQUIRE_MESSAGE(good.config.has_value(), errors_of(good));
  CHECK(good.config->listeners[0].accept_proxy_from.size() == 2);
  const ConfigResult bad = sluice::parse_config(R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    accept_proxy_from: [10.0.0.0/33]
  - name: other
    bind: 127.0.0.1:8081
    service: web
    accept_proxy_from: [10.0.0.0/8]
services:
  - name: web
    backends: [{ name: a, address: "127.0.0.1:9000" }]
)", "t.yaml");
  CHECK_FALSE(bad.config.has_value());
  const std::string errors = errors_of(bad);
  CHECK(errors.find("t.yaml:5:25: accept_proxy_from: ") != std::string::npos);
  CHECK(errors.find("t.yaml:9:24: accept_proxy_from: needs accept_proxy: true") != std::string::npos);
}

TEST_CASE("config: a bad send_proxy or accept_proxy is an error at its place") {
  const ConfigResult result = sluice::parse_config(R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
    accept_proxy: maybe
    accept_proxy_timeout: 0s
services:
  - name: web
    send_proxy: v3
    backends:
      - name: a
        address: 127.0.0.1:9000
        send_proxy: true
)", "t.yaml");
  CHECK_FALSE(result.config.has_value());
  CHECK(errors_of(result) ==
        "t.yaml:5:19: accept_proxy: expected true or false, got 'maybe'\n"
        "t.yaml:6:27: accept_proxy_timeout: must be greater than 0, got '0s'\n"
        "t.yaml:9:17: send_proxy: expected one of off, v1, v2, got 'v3'; did you mean 'v1'?\n"
        "t.yaml:13:21: send_proxy: expected one of off, v1, v2, got 'true'\n");
}
