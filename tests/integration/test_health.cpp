// Health on loopback: a backend that refuses goes down by its checks, clients that arrive while no
// backend is up wait in the queue, and the backend coming back serves them. GET /backends shows it.

#include <doctest/doctest.h>

#include <cstdio>
#include <future>
#include <memory>

#include "harness.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;

namespace {

constexpr const char* kUp = R"(sluice_backend_up{service="web",backend="late",node="n1"})";
constexpr const char* kChanges = R"(sluice_backend_state_changes_total{service="web",backend="late",node="n1"})";

// A service of one backend at `address`, checked every 100 ms: down after 2 failures, up after 2 passes.
ConfigSpec checked_service(const Address& address, const std::string& queue_timeout) {
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  ServiceSpec service{.retries = 0, .backends = {{.name = "late", .address = address, .node = "n1"}}};
  service.queue = QueueSpec{.timeout = queue_timeout};
  service.health_check = HealthCheckSpec{.interval = "100ms", .timeout = "100ms", .rise = 2, .fall = 2};
  spec.services = {service};
  return spec;
}

// True when `text` is one well-formed JSON document (Debian's python3 parses it).
bool is_json(const std::string& text) {
  std::unique_ptr<FILE, int (*)(FILE*)> python(
      popen("python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null", "w"), pclose);
  if (!python) return false;
  std::fwrite(text.data(), 1, text.size(), python.get());
  return pclose(python.release()) == 0;
}

}  // namespace

TEST_CASE("health: a refused backend goes down, queued clients wait for it, and it serves them when back") {
  RefusedPort port;
  DaemonProcess daemon(checked_service(port.address(), "10s").yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Checks at 0 and 100 ms fail: down at about 100 ms.
  REQUIRE(wait_metric(admin, kUp, 0, 2s));
  CHECK(daemon.wait_for_line("backend_state service=web backend=late node=n1 state=down reason=\"2 failures in a row, "
                             "the last a health check: ECONNREFUSED\"",
                             1s));
  const HttpResponse down = http_get(admin, "/backends");
  CHECK(down.status == 200);
  CHECK(is_json(down.body));
  CHECK(down.body.find(R"("name":"late","set":null,"node":"n1","address":")" + port.address().to_string() + R"(","resolved":")" +
                       port.address().to_string() + R"(","state":"down")") != std::string::npos);

  // Two clients arrive while no backend is up: they wait instead of being refused.
  auto first = std::async(std::launch::async, [&] { return http_get(proxy, "/one", 10s); });
  auto second = std::async(std::launch::async, [&] { return http_get(proxy, "/two", 10s); });
  REQUIRE(wait_metric(admin, R"(sluice_service_queue_length{service="web"})", 2, 2s));

  port.release();
  DaemonProcess backend(Command{{SLUICE_BACKEND_BINARY, "--listen", port.address().to_string(), "--name", "late"}});
  REQUIRE(backend.wait_for_line("listening on", 5s));
  for (auto* client : {&first, &second}) {
    const HttpResponse response = client->get();
    CHECK(response.status == 200);
    CHECK(response.body.rfind("backend=late ", 0) == 0);
  }
  const std::string text = scrape(admin);
  CHECK(metric(text, kUp) == 1);
  CHECK(metric(text, kChanges) == 2);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="web",reason="no_backend"})") == 0);
  CHECK(daemon.wait_for_line("backend_state service=web backend=late node=n1 state=up reason=\"2 health checks passed\"",
                             1s));
  const HttpResponse up = http_get(admin, "/backends");
  CHECK(is_json(up.body));
  CHECK(up.body.find(R"("state":"up","reason":"2 health checks passed")") != std::string::npos);
  CHECK(up.body.find(R"("connections_total":2,)") != std::string::npos);
}

TEST_CASE("health: with no backend up, a queued client is closed at the queue timeout and counted no_backend") {
  RefusedPort port;
  DaemonProcess daemon(checked_service(port.address(), "300ms").yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  REQUIRE(wait_metric(admin, kUp, 0, 2s));

  Client client = Client::connect(proxy);
  const auto started = std::chrono::steady_clock::now();
  const ReadResult result = client.read_until_end(3s);
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(result.end == End::eof);
  CHECK(result.data.empty());
  CHECK(waited >= 250ms);
  CHECK(waited < 1500ms);
  CHECK(wait_metric(admin, R"(sluice_listener_connections_rejected_total{listener="web",reason="no_backend"})", 1, 2s));
  CHECK(metric(scrape(admin), R"(sluice_listener_connections_rejected_total{listener="web",reason="queue_timeout"})") ==
        0);
}
