// The `http` section and a listener's `mode` (README "Configuration"): defaults, values read, and
// each bad value reported with file, line and column.

#include "sluice/config/config.hpp"

#include <doctest/doctest.h>

#include <string>

using sluice::ListenerMode;
using sluice::Millis;

namespace {

const char* const kListener = R"(listeners:
  - name: web
    bind: 127.0.0.1:8080
    service: web
)";
const char* const kService = R"(services:
  - name: web
    backends:
      - name: a
        address: 127.0.0.1:9000
)";

// A config with `listener_line` added to the listener (line 5) and `top` after the services.
std::string config_with(const std::string& listener_line, const std::string& top = "") {
  return std::string(kListener) + listener_line + kService + top;
}

std::string errors_of(const std::string& yaml) {
  std::string joined;
  for (const auto& error : sluice::parse_config(yaml, "t.yaml").errors) joined += error.to_string() + "\n";
  return joined;
}

}  // namespace

TEST_CASE("http: defaults, tcp mode unless asked") {
  auto result = sluice::parse_config(config_with(""), "t.yaml");
  REQUIRE(result.config.has_value());
  const auto& listener = result.config->listeners.at(0);
  CHECK(listener.mode == ListenerMode::tcp);
  CHECK(listener.http.request_timeout == Millis(10000));
  CHECK(listener.http.response_timeout == Millis(60000));
  CHECK(listener.http.max_header_bytes == 16384);
  CHECK(listener.http.pool_idle_timeout == Millis(4000));
  CHECK(listener.http.pool_max_idle == 64);
  CHECK_FALSE(listener.http.forwarded);
  CHECK(listener.http.pipeline_depth == 1);
}

TEST_CASE("http: every key read, and copied into each listener") {
  const std::string top = "http:\n  request_timeout: 2s\n  response_timeout: 30s\n  max_header_bytes: 8192\n"
                          "  pool_idle_timeout: 1s\n  pool_max_idle: 4\n  forwarded: true\n  pipeline_depth: 64\n";
  auto result = sluice::parse_config(config_with("    mode: http\n", top), "t.yaml");
  CHECK(errors_of(config_with("    mode: http\n", top)) == "");
  REQUIRE(result.config.has_value());
  const auto& listener = result.config->listeners.at(0);
  CHECK(listener.mode == ListenerMode::http);
  CHECK(listener.http.request_timeout == Millis(2000));
  CHECK(listener.http.response_timeout == Millis(30000));
  CHECK(listener.http.max_header_bytes == 8192);
  CHECK(listener.http.pool_idle_timeout == Millis(1000));
  CHECK(listener.http.pool_max_idle == 4);
  CHECK(listener.http.forwarded);
  CHECK(listener.http.pipeline_depth == 64);
  CHECK(listener.http == result.config->http);
}

TEST_CASE("http: bad values are errors with their place") {
  CHECK(errors_of(config_with("    mode: udp\n")) ==
        "t.yaml:5:11: mode: expected one of tcp, http, got 'udp'\n");
  // The services end on line 9: the http section starts on line 10.
  CHECK(errors_of(config_with("", "http:\n  request_timeout: 0s\n")) ==
        "t.yaml:11:20: request_timeout: must be greater than 0, got '0s'\n");
  CHECK(errors_of(config_with("", "http:\n  max_header_bytes: 10\n")) ==
        "t.yaml:11:21: max_header_bytes: 10 is out of range 256..1048576\n");
  CHECK(errors_of(config_with("", "http:\n  pipeline_depth: 0\n")) ==
        "t.yaml:11:19: pipeline_depth: 0 is out of range 1..64\n");
  CHECK(errors_of(config_with("", "http:\n  pipeline_depth: 65\n")) ==
        "t.yaml:11:19: pipeline_depth: 65 is out of range 1..64\n");
  CHECK(errors_of(config_with("", "http:\n  forwarded: yes please\n")) ==
        "t.yaml:11:14: forwarded: expected true or false, got 'yes please'\n");
  CHECK(errors_of(config_with("", "http:\n  pool_idle_timeot: 1s\n")) ==
        "t.yaml:11:3: unknown key 'pool_idle_timeot' in http; did you mean 'pool_idle_timeout'?\n");
  CHECK(errors_of(config_with("", "http: 5\n")) == "t.yaml:10:7: http: expected a map, got '5'\n");
}
