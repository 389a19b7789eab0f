// HTTP health checks on loopback: a backend whose /healthz status flips goes down and comes back
// up with it; one that answers garbage, closes before a status line or never answers fails its
// checks, and the reason says which.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "harness.hpp"
#include "http_status_server.hpp"
#include "test_support.hpp"

using namespace sluice::it;
using sluice::test::scaled;

namespace {

std::string up_series(const std::string& backend) {
  return R"(sluice_backend_up{service="web",backend=")" + backend + R"(",node="n1"})";
}

// Every 100 ms an HTTP check of `http`: down after 2 failures, up after 2 passes.
ConfigSpec http_checked(const std::vector<BackendSpec>& backends, const std::string& http) {
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  ServiceSpec service{.retries = 0, .backends = backends};
  service.health_check = HealthCheckSpec{.interval = "100ms", .timeout = "100ms", .rise = 2, .fall = 2, .http = http};
  spec.services = {service};
  return spec;
}

}  // namespace

TEST_CASE("http health: the backend follows its /healthz status down and up, the reason names the status") {
  HttpStatusServer backend(200);
  DaemonProcess daemon(
      http_checked({{.name = "b", .address = backend.address(), .node = "n1"}}, "path: /healthz, expect: 200-399")
          .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // What a check sends.
  std::vector<sluice::http::MessageHead> heads;
  REQUIRE(backend.wait_requests(1, scaled(Millis(2s)), heads));
  CHECK(heads[0].method == "GET");
  CHECK(heads[0].target == "/healthz");
  CHECK(heads[0].version_minor == 1);
  CHECK(heads[0].header("Host") == backend.address().to_string());
  CHECK(heads[0].header("Connection") == "close");
  CHECK(metric(scrape(admin), up_series("b")) == 1);

  backend.set_status(503);
  REQUIRE(wait_metric(admin, up_series("b"), 0, scaled(Millis(3s))));
  CHECK(daemon.wait_for_line("backend_state service=web backend=b node=n1 state=down reason=\"2 failures in a row, "
                             "the last a health check: HTTP 503\"",
                             scaled(Millis(1s))));
  const HttpResponse down = http_get(admin, "/backends");
  CHECK(down.body.find(R"("state":"down","reason":"2 failures in a row, the last a health check: HTTP 503")") !=
        std::string::npos);

  backend.set_status(302);  // inside 200-399
  REQUIRE(wait_metric(admin, up_series("b"), 1, scaled(Millis(3s))));
  CHECK(daemon.wait_for_line("backend_state service=web backend=b node=n1 state=up reason=\"2 health checks passed\"",
                             scaled(Millis(1s))));
  const std::string text = scrape(admin);
  CHECK(metric(text, R"(sluice_backend_state_changes_total{service="web",backend="b",node="n1"})") == 2);

  // Clients still go through to it (the checks are not proxied traffic).
  const std::size_t checks = backend.requests();
  const HttpResponse through = http_get(proxy, "/page", scaled(Millis(2s)));
  CHECK(through.status == 302);
  REQUIRE(backend.wait_requests(checks + 1, scaled(Millis(2s)), heads));
  bool proxied = false;
  for (const auto& head : heads) proxied = proxied || head.target == "/page";
  CHECK(proxied);
}

TEST_CASE("http health: garbage, a close before the status line and silence fail the check, each named") {
  // Each reads the check's request head first, so the check's write never races the answer.
  auto read_head = [](ServerConnection& c) {
    std::string seen;
    char buffer[1024];
    while (seen.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = c.read_some(buffer, sizeof buffer);
      if (n <= 0) return false;
      seen.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  };
  TcpServer garbage(AF_INET, [&](ServerConnection& c) {
    if (read_head(c)) c.write_all("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  });
  TcpServer closer(AF_INET, [&](ServerConnection& c) { read_head(c); });
  TcpServer silent(AF_INET, [&](ServerConnection& c) {
    if (read_head(c)) c.drain();  // until the check gives up and closes
  });
  DaemonProcess daemon(http_checked({{.name = "garbage", .address = garbage.address(), .node = "n1"},
                                     {.name = "closer", .address = closer.address(), .node = "n1"},
                                     {.name = "silent", .address = silent.address(), .node = "n1"}},
                                    "path: /healthz")
                           .yaml());
  const Address admin = wait_admin_address(daemon);
  for (const char* name : {"garbage", "closer", "silent"}) {
    INFO(name);
    CHECK(wait_metric(admin, up_series(name), 0, scaled(Millis(3s))));
  }
  const std::string prefix = "node=n1 state=down reason=\"2 failures in a row, the last a health check: ";
  CHECK(daemon.wait_for_line("backend=garbage " + prefix + "invalid HTTP response: HPE_", scaled(Millis(1s))));
  CHECK(daemon.wait_for_line("backend=closer " + prefix + "connection closed before a status line\"",
                             scaled(Millis(1s))));
  CHECK(daemon.wait_for_line("backend=silent " + prefix + "timeout\"", scaled(Millis(1s))));
  CHECK(garbage.accepted() >= 2);
  CHECK(closer.accepted() >= 2);
}
