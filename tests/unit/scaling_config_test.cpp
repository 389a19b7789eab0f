// The `scaling` section of a service (README "The scaling signal"): defaults, and every bad value
// named with its place.

#include <doctest/doctest.h>

#include <string>

#include "sluice/config/config.hpp"

namespace {

// A service with two one-slot backends and `scaling` lines (indented for the service) from line 11.
std::string with_scaling(const std::string& scaling, const std::string& second_slots = "1") {
  return "listeners:\n"
         "  - name: web\n"
         "    bind: 127.0.0.1:8080\n"
         "    service: web\n"
         "services:\n"
         "  - name: web\n"
         "    backends:\n"
         "      - {name: a, address: 127.0.0.1:9000, max_connections: 1}\n"
         "      - {name: b, address: 127.0.0.1:9001, max_connections: " +
         second_slots +
         "}\n"
         "    scaling:\n" +
         scaling;
}

std::string errors_of(const std::string& yaml) {
  const sluice::ConfigResult result = sluice::parse_config(yaml, "t.yaml");
  std::string joined;
  for (const auto& error : result.errors) joined += error.to_string() + "\n";
  return joined;
}

const sluice::ScalingConfig& scaling_of(const sluice::ConfigResult& result) {
  REQUIRE(result.config);
  REQUIRE(result.config->services.front().scaling);
  return *result.config->services.front().scaling;
}

}  // namespace

TEST_CASE("scaling: absent means no signal, present takes its defaults") {
  const auto none = sluice::parse_config(
      "listeners: [{name: web, bind: 127.0.0.1:1, service: web}]\n"
      "services: [{name: web, backends: [{name: a, address: 127.0.0.1:2}]}]\n",
      "t.yaml");
  REQUIRE(none.config);
  CHECK_FALSE(none.config->services.front().scaling);

  const auto result = sluice::parse_config(with_scaling("      target_wait: 5ms\n"), "t.yaml");
  const auto& scaling = scaling_of(result);
  CHECK(scaling.window == sluice::Millis(60000));
  CHECK(scaling.target_wait == sluice::Millis(5));
  CHECK_FALSE(scaling.target_quantile);
  CHECK(scaling.min_backends == 1);
  CHECK(scaling.max_backends == 64);
  CHECK(scaling.slots_per_backend == 1);  // the backends' max_connections, which agree
}

TEST_CASE("scaling: every key read") {
  const auto result = sluice::parse_config(with_scaling("      window: 20s\n"
                                                        "      target_wait: 10ms\n"
                                                        "      target_quantile: {p: 0.99, wait: 50ms}\n"
                                                        "      min_backends: 2\n"
                                                        "      max_backends: 9\n"
                                                        "      slots_per_backend: 4\n",
                                                        "3"),
                                           "t.yaml");
  const auto& scaling = scaling_of(result);
  CHECK(scaling.window == sluice::Millis(20000));
  REQUIRE(scaling.target_quantile);
  CHECK(scaling.target_quantile->p == doctest::Approx(0.99));
  CHECK(scaling.target_quantile->wait == sluice::Millis(50));
  CHECK(scaling.min_backends == 2);
  CHECK(scaling.max_backends == 9);
  CHECK(scaling.slots_per_backend == 4);
}

TEST_CASE("scaling: unlimited backends agree on 0 slots, which means no model (not an error)") {
  const auto result = sluice::parse_config(
      "listeners: [{name: web, bind: 127.0.0.1:1, service: web}]\n"
      "services: [{name: web, backends: [{name: a, address: 127.0.0.1:2}], scaling: {target_wait: 1s}}]\n",
      "t.yaml");
  CHECK(scaling_of(result).slots_per_backend == 0);
}

TEST_CASE("scaling: each bad value is named with its line") {
  struct Case {
    const char* what;
    std::string yaml;
    std::string errors;
  };
  const Case cases[] = {
      {"target_wait missing", with_scaling("      window: 20s\n"),
       "t.yaml:11:7: scaling of service 'web': missing required key 'target_wait'\n"},
      {"window too short", with_scaling("      target_wait: 5ms\n      window: 9s\n"),
       "t.yaml:12:15: window: 9s is out of range 10s..1h\n"},
      {"window too long", with_scaling("      target_wait: 5ms\n      window: 2h\n"),
       "t.yaml:12:15: window: 2h is out of range 10s..1h\n"},
      {"window not a duration", with_scaling("      target_wait: 5ms\n      window: soon\n"),
       "t.yaml:12:15: window: expected a duration such as 250ms, 2s, 1m or 1h, got 'soon'\n"},
      {"target_wait zero", with_scaling("      target_wait: 0ms\n"),
       "t.yaml:11:20: target_wait: must be greater than 0, got '0ms'\n"},
      {"quantile p out of range", with_scaling("      target_wait: 5ms\n      target_quantile: {p: 1, wait: 5ms}\n"),
       "t.yaml:12:28: p: 1 is not strictly between 0 and 1\n"},
      {"quantile p not a number", with_scaling("      target_wait: 5ms\n      target_quantile: {p: high, wait: 5ms}\n"),
       "t.yaml:12:28: p: expected a number between 0 and 1 such as 0.95, got 'high'\n"},
      {"quantile wait missing", with_scaling("      target_wait: 5ms\n      target_quantile: {p: 0.9}\n"),
       "t.yaml:12:24: target_quantile of scaling of service 'web': missing required key 'wait'\n"},
      {"quantile unknown key", with_scaling("      target_wait: 5ms\n      target_quantile: {p: 0.9, wait: 1s, q: 2}\n"),
       "t.yaml:12:43: unknown key 'q' in target_quantile of scaling of service 'web'; did you mean 'p'?\n"},
      {"min above max", with_scaling("      target_wait: 5ms\n      min_backends: 5\n      max_backends: 4\n"),
       "t.yaml:13:21: max_backends: 4 is less than min_backends 5\n"},
      {"max zero", with_scaling("      target_wait: 5ms\n      max_backends: 0\n"),
       "t.yaml:12:21: max_backends: 0 is out of range 1..100000\n"},
      {"slots_per_backend zero", with_scaling("      target_wait: 5ms\n      slots_per_backend: 0\n"),
       "t.yaml:12:26: slots_per_backend: 0 is out of range 1..1000000\n"},
      {"backends disagree on slots", with_scaling("      target_wait: 5ms\n", "2"),
       "t.yaml:11:7: scaling of service 'web': the backends' max_connections differ (1 and 2); set "
       "slots_per_backend to the slots one more backend brings\n"},
      {"unknown key", with_scaling("      target_wait: 5ms\n      targt_wait: 5ms\n"),
       "t.yaml:12:7: unknown key 'targt_wait' in scaling of service 'web'; did you mean 'target_wait'?\n"},
      {"not a map", with_scaling("      - 1\n"), "t.yaml:11:7: scaling of service 'web': expected a map, got a list\n"},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.what));
    CHECK(errors_of(c.yaml) == c.errors);
  }
  // Disagreeing backends are fine when slots_per_backend says what one more brings.
  CHECK(errors_of(with_scaling("      target_wait: 5ms\n      slots_per_backend: 2\n", "2")).empty());
}
