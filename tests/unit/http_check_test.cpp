// HTTP health checks: the `expect` status range, the `health_check.http` config with its errors,
// the request a check sends and how the answer decides it (HttpCheckReader).

#include "sluice/health/http_check.hpp"

#include <doctest/doctest.h>

#include <string>

using sluice::HttpCheckConfig;
using sluice::HttpCheckReader;
using sluice::StatusRange;
using Outcome = sluice::HttpCheckReader::Outcome;

namespace {

std::string range_error(const std::string& text) {
  std::string why;
  CHECK(!sluice::parse_status_range(text, &why).has_value());
  return why;
}

// A valid config whose service has `check` as its health_check lines (indented by 6).
std::string config_with_check(const std::string& check) {
  return "listeners:\n  - { name: web, bind: 127.0.0.1:8080, service: web }\n"
         "services:\n  - name: web\n    backends: [{ name: a, address: 127.0.0.1:9000 }]\n"
         "    health_check:\n" +
         check;
}

std::string errors_of(const std::string& yaml) {
  const sluice::ConfigResult result = sluice::parse_config(yaml, "t.yaml");
  std::string joined;
  for (const auto& error : result.errors) joined += error.to_string() + "\n";
  return joined;
}

}  // namespace

TEST_CASE("status range: a single code or an inclusive range, each 100..599") {
  CHECK(sluice::parse_status_range("200") == StatusRange{200, 200});
  CHECK(sluice::parse_status_range("200-399") == StatusRange{200, 399});
  CHECK(sluice::parse_status_range("100-599") == StatusRange{100, 599});
  CHECK(sluice::parse_status_range("204-204") == StatusRange{204, 204});
  CHECK(StatusRange{200, 399}.contains(200));
  CHECK(StatusRange{200, 399}.contains(399));
  CHECK(!StatusRange{200, 399}.contains(199));
  CHECK(!StatusRange{200, 399}.contains(400));
  CHECK(StatusRange{200, 200}.to_string() == "200");
  CHECK(StatusRange{200, 399}.to_string() == "200-399");
}

TEST_CASE("status range: what is refused, and why") {
  const std::string shape = "expected a status code 100..599 or a range such as 200-399, got ";
  CHECK(range_error("") == shape + "''");
  CHECK(range_error("2xx") == shape + "'2xx'");
  CHECK(range_error("99") == shape + "'99'");
  CHECK(range_error("600") == shape + "'600'");
  CHECK(range_error("0200") == shape + "'0200'");
  CHECK(range_error("200-") == shape + "'200-'");
  CHECK(range_error("-399") == shape + "'-399'");
  CHECK(range_error("200 - 399") == shape + "'200 - 399'");
  CHECK(range_error("200-300-400") == shape + "'200-300-400'");
  CHECK(range_error("+200") == shape + "'+200'");
  CHECK(range_error("399-200") == "range '399-200' is empty: 399 is above 200");
}

TEST_CASE("http check config: defaults, and every key read") {
  auto result = sluice::parse_config(config_with_check("      http: {}\n"), "t.yaml");
  REQUIRE(result.config.has_value());
  const auto& http = result.config->services[0].health_check.http;
  REQUIRE(http.has_value());
  CHECK(http->path == "/");
  CHECK(http->host.empty());
  CHECK(http->expect == StatusRange{200, 399});

  result = sluice::parse_config(
      config_with_check("      http: { path: /healthz, expect: 204, host: \"[::1]:8080\" }\n"), "t.yaml");
  REQUIRE(result.config.has_value());
  const auto& set = *result.config->services[0].health_check.http;
  CHECK(set.path == "/healthz");
  CHECK(set.host == "[::1]:8080");
  CHECK(set.expect == StatusRange{204, 204});
}

TEST_CASE("http check config: a bad range, path or host is an error with its file and line") {
  CHECK(errors_of(config_with_check("      http:\n        path: healthz\n        expect: 400-200\n")) ==
        "t.yaml:8:15: path: must start with '/', got 'healthz'\n"
        "t.yaml:9:17: expect: range '400-200' is empty: 400 is above 200\n");
  CHECK(errors_of(config_with_check("      http: { expect: 2xx, path: \"/a b\", host: \"x\\r\\nEvil: 1\" }\n")) ==
        "t.yaml:7:23: expect: expected a status code 100..599 or a range such as 200-399, got '2xx'\n"
        "t.yaml:7:34: path: '/a b' has a space, control or non-ASCII character at offset 2\n"
        "t.yaml:7:48: host: 'x\r\nEvil: 1' has a space, control or non-ASCII character at offset 1\n");
  CHECK(errors_of(config_with_check("      http: /healthz\n")) ==
        "t.yaml:7:13: http of health_check of service 'web': expected a map, got '/healthz'\n");
  CHECK(errors_of(config_with_check("      http: { paht: /x, expect: [200] }\n")) ==
        "t.yaml:7:15: unknown key 'paht' in http of health_check of service 'web'; did you mean 'path'?\n"
        "t.yaml:7:33: expect: expected a status code or a range such as 200-399, got a list\n");
}

TEST_CASE("http check request: GET with Host, Connection close, nothing after the head") {
  HttpCheckConfig config;
  config.path = "/healthz?ready=1";
  CHECK(sluice::http_check_request(config, {"web.default.svc", 8000}) ==
        "GET /healthz?ready=1 HTTP/1.1\r\nHost: web.default.svc:8000\r\nUser-Agent: sluice-health-check\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n");
  CHECK(sluice::http_check_request(config, {"::1", 81}).find("\r\nHost: [::1]:81\r\n") != std::string::npos);
  config.host = "ready.example";
  CHECK(sluice::http_check_request(config, {"10.0.0.1", 80}).find("\r\nHost: ready.example\r\n") !=
        std::string::npos);
}

TEST_CASE("http check outcome: a status in the range passes, one outside fails naming it") {
  HttpCheckReader ok({200, 399});
  CHECK(ok.feed("HTTP/1.1 204 No Content\r\n\r\n") == Outcome::passed);
  CHECK(ok.status() == 204);
  CHECK(ok.reason().empty());

  HttpCheckReader down({200, 399});
  CHECK(down.feed("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nnope\n") == Outcome::failed);
  CHECK(down.reason() == "HTTP 503");
  CHECK(down.status() == 503);

  HttpCheckReader exact({200, 200});
  CHECK(exact.feed("HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n") == Outcome::failed);
  CHECK(exact.reason() == "HTTP 301");
}

TEST_CASE("http check outcome: decided at the head, whatever the body or the bytes after it") {
  HttpCheckReader reader({200, 399});
  CHECK(reader.feed("HTTP/1.1 2") == Outcome::pending);
  CHECK(reader.feed("00 OK\r\nContent-Le") == Outcome::pending);
  CHECK(reader.feed("ngth: 100\r\n\r\npartial body") == Outcome::passed);
  CHECK(reader.feed("not HTTP at all") == Outcome::passed);  // decided: the rest is ignored
  CHECK(reader.closed() == Outcome::passed);

  HttpCheckReader chunked({200, 399});
  CHECK(chunked.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel") == Outcome::passed);
}

TEST_CASE("http check outcome: interim 1xx responses are skipped, the final status decides") {
  HttpCheckReader reader({200, 299});
  CHECK(reader.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n") ==
        Outcome::pending);
  CHECK(reader.feed("HTTP/1.1 500 Internal Server Error\r\n\r\n") == Outcome::failed);
  CHECK(reader.reason() == "HTTP 500");

  HttpCheckReader together({200, 299});
  CHECK(together.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n") == Outcome::passed);
}

TEST_CASE("http check outcome: garbage, a close before the status and a huge head fail, each saying so") {
  HttpCheckReader garbage({200, 399});
  CHECK(garbage.feed("SSH-2.0-OpenSSH_9.2\r\n") == Outcome::failed);
  CHECK(garbage.reason().rfind("invalid HTTP response: HPE_", 0) == 0);

  HttpCheckReader silent({200, 399});
  CHECK(silent.closed() == Outcome::failed);
  CHECK(silent.reason() == "connection closed before a status line");

  HttpCheckReader cut({200, 399});
  CHECK(cut.feed("HTTP/1.1 200 OK\r\nServer: x\r\n") == Outcome::pending);
  CHECK(cut.closed() == Outcome::failed);
  CHECK(cut.reason() == "connection closed in the response head");

  HttpCheckReader huge({200, 399});
  CHECK(huge.feed("HTTP/1.1 200 OK\r\nX: " + std::string(10000, 'a')) == Outcome::failed);
  CHECK(huge.reason().rfind("response head larger than", 0) == 0);
}
