// The `dns` section and the bind-address rule (README "Configuration"): values, defaults, and
// every error with its place.

#include "sluice/config/config.hpp"

#include <doctest/doctest.h>

#include <string>

namespace {

std::string with(const std::string& listener_bind, const std::string& extra) {
  return "listeners:\n"
         "  - name: web\n"
         "    bind: " + listener_bind + "\n"
         "    service: web\n"
         "services:\n"
         "  - name: web\n"
         "    backends:\n"
         "      - name: a\n"
         "        address: web.example:9000\n" +
         extra;
}

std::string errors_of(const std::string& yaml) {
  std::string joined;
  for (const auto& error : sluice::parse_config(yaml, "t.yaml").errors) joined += error.to_string() + "\n";
  return joined;
}

}  // namespace

TEST_CASE("dns: servers with and without a port, IPv4 and IPv6, and the timeout") {
  const auto result = sluice::parse_config(
      with("127.0.0.1:8080", "dns:\n  servers: [10.96.0.10, \"10.0.0.1:5353\", \"::1\", \"[fd00::10]:54\"]\n"
                             "  timeout: 2s\n"),
      "t.yaml");
  REQUIRE_MESSAGE(result.config.has_value(), errors_of(with("127.0.0.1:8080", "")));
  const auto& servers = result.config->dns.servers;
  REQUIRE(servers.size() == 4);
  CHECK(servers[0].to_string() == "10.96.0.10:53");
  CHECK(servers[1].to_string() == "10.0.0.1:5353");
  CHECK(servers[2].to_string() == "[::1]:53");
  CHECK(servers[3].to_string() == "[fd00::10]:54");
  CHECK(result.config->dns.timeout == sluice::Millis(2000));
}

TEST_CASE("dns: absent, the system's resolv.conf and a 5 s deadline") {
  const auto result = sluice::parse_config(with("127.0.0.1:8080", ""), "t.yaml");
  REQUIRE(result.config.has_value());
  CHECK(result.config->dns.servers.empty());
  CHECK(result.config->dns.timeout == sluice::Millis(5000));
}

TEST_CASE("dns: a bad server names itself with file and line, and so do unknown keys and a zero timeout") {
  CHECK(errors_of(with("127.0.0.1:8080", "dns:\n  servers:\n    - 10.0.0.1\n    - ns.example\n")) ==
        "t.yaml:13:7: servers: 'ns.example' is not an IP address (a name server cannot be given by name)\n");
  CHECK(errors_of(with("127.0.0.1:8080", "dns:\n  servers: [\"10.0.0.1:99999\"]\n")) ==
        "t.yaml:11:13: servers: '10.0.0.1:99999': port 99999 is out of range 0..65535\n");
  CHECK(errors_of(with("127.0.0.1:8080", "dns:\n  servers: 10.0.0.1\n")) == "t.yaml:11:12: servers: expected a list, got '10.0.0.1'\n");
  CHECK(errors_of(with("127.0.0.1:8080", "dns:\n  server: [10.0.0.1]\n  timeout: 0s\n")) ==
        "t.yaml:11:3: unknown key 'server' in dns; did you mean 'servers'?\n"
        "t.yaml:12:12: timeout: must be greater than 0, got '0s'\n");
}

TEST_CASE("bind: an IP literal or localhost, and any other name is refused, never looked up") {
  CHECK(errors_of(with("localhost:0", "")) == "");
  CHECK(errors_of(with("\"[::1]:0\"", "")) == "");
  CHECK(errors_of(with("web.example:80", "")) ==
        "t.yaml:3:11: bind: host name 'web.example' cannot be bound: use an IP address (or localhost)\n");
  CHECK(errors_of(with("127.0.0.1:80", "admin:\n  bind: admin.example:9100\n")) ==
        "t.yaml:11:9: bind: host name 'admin.example' cannot be bound: use an IP address (or localhost)\n");
}
