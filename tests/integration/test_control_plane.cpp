// The control plane and its workers: a stuck data worker is seen by /healthz and /metrics without
// freezing either, and a reload is taken by every worker or by none.

#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "harness.hpp"
#include "test_support.hpp"

using namespace sluice::it;

namespace {

const Launch kTestHooks{.environment = {"SLUICE_TEST_HOOKS=1"}};

std::string accepted_total() { return "sluice_listener_connections_accepted_total{listener=\"web\"}"; }
std::string worker_up(int worker) { return "sluice_worker_up{worker=\"" + std::to_string(worker) + "\"}"; }

}  // namespace

TEST_CASE("control plane: a stalled worker fails /healthz within worker_timeout, /metrics still answers and names it") {
  NameServer a("a");
  DaemonProcess daemon(name_servers_config({&a}, 2, "300ms"), {}, kTestHooks);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  for (int i = 0; i < 20; ++i) REQUIRE(served_by(proxy) == "a");
  REQUIRE(wait_metric(admin, accepted_total(), 20, 2s));
  CHECK(http_get(admin, "/healthz").status == 200);

  const std::uint32_t stall_ms = 2000 * static_cast<std::uint32_t>(sluice::test::time_scale());
  REQUIRE(http_get(admin, "/test/stall-worker/2/" + std::to_string(stall_ms)).status == 200);
  const auto stalled = Clock::now();
  HttpResponse health;
  while (Clock::now() - stalled < sluice::test::scaled(Millis(1500))) {
    health = http_get(admin, "/healthz");
    if (health.status == 503) break;
  }
  INFO("/healthz: " << health.status << " " << health.body);
  CHECK(health.status == 503);
  CHECK(health.body.find("worker 2 has not answered") != std::string::npos);
  // /metrics answers while worker 2 sleeps, says it is late, and keeps its numbers.
  const auto before_scrape = Clock::now();
  const std::string text = scrape(admin);
  CHECK(elapsed_ms(before_scrape) < sluice::test::scaled(Millis(1500)).count());
  CHECK(metric(text, worker_up(1)) == 1);
  CHECK(metric(text, worker_up(2)) == 0);
  CHECK(metric(text, accepted_total()) == 20);

  // Once it wakes, every answer is back.
  CHECK(wait_metric(admin, worker_up(2), 1, sluice::test::scaled(Millis(stall_ms + 2000))));
  CHECK(http_get(admin, "/healthz").status == 200);
  CHECK(metric(scrape(admin), accepted_total()) == 20);
}

TEST_CASE("control plane: a reload that fails in one worker leaves every worker on the old config and is counted") {
  NameServer a("a");
  NameServer b("b");
  TempConfig config(name_servers_config({&a}, 2));
  DaemonProcess daemon(config, {}, kTestHooks);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  REQUIRE(http_get(admin, "/test/fail-next-reload/2").status == 200);
  config.write(name_servers_config({&b}, 2));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, "sluice_config_reloads_total{result=\"failure\"}", 1, 5s));
  CHECK(daemon.wait_for_line("worker 2: failure injected", 2s));
  {
    const std::string after_failure = scrape(admin);
    CHECK(metric(after_failure, "sluice_config_reloads_total{result=\"success\"}") == 0);
    CHECK(metric(after_failure, "sluice_config_generation") == 1);
    CHECK(metric(after_failure, "sluice_config_last_reload_successful") == 0);
  }
  // Both workers kept the old config: every client, whichever worker accepts it, reaches a.
  for (int i = 0; i < 40; ++i) REQUIRE(served_by(proxy) == "a");
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_worker_connections_accepted_total{worker=\"1\"}") > 0);
  CHECK(metric(text, "sluice_worker_connections_accepted_total{worker=\"2\"}") > 0);
  CHECK(b.accepted() == 0);

  // The same file again, with no failure injected: every worker takes it.
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, "sluice_config_reloads_total{result=\"success\"}", 1, 5s));
  for (int i = 0; i < 40; ++i) REQUIRE(served_by(proxy) == "b");
  CHECK(a.accepted() == 40);
  const std::string after_success = scrape(admin);
  CHECK(metric(after_success, "sluice_config_generation") == 2);
  CHECK(metric(after_success, "sluice_config_last_reload_successful") == 1);
}
