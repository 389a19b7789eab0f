// Running out of local ports towards a backend (EADDRNOTAVAIL at connect) is the proxy's own
// limit, never the backend's fault. The daemon and its backend run in a network namespace whose
// ephemeral port range holds two ports, so a third concurrent session cannot get one. Needs root.

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "harness.hpp"
#include "netns.hpp"
#include "test_support.hpp"

using namespace sluice::it;

TEST_CASE("local ports: out of ephemeral ports towards a backend, the client is refused as local_error and the backend keeps its record") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  NetnsNetwork network({"lb"}, 3);
  const NetnsNode& node = network.node("lb");
  const CommandResult sysctl =
      network.run("lb", {"/usr/sbin/sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40001"});
  REQUIRE_MESSAGE(sysctl.exit_code == 0, sysctl.output);

  const Address backend_address{node.address, 8000};
  DaemonProcess backend(Command{{SLUICE_BACKEND_BINARY, "--listen", backend_address.to_string(), "--name", "b"}},
                        network.launch("lb"));
  REQUIRE(backend.wait_for_line("sluice-backend b listening on " + backend_address.to_string(), 5s));

  // Fixed ports: a bind to port 0 would take the two ephemeral ones.
  ConfigSpec spec{.listeners = {ListenerSpec{.bind = node.address + ":8080"}},
                  .services = {ServiceSpec{.retries = 2, .backends = {{"b", backend_address}}}},
                  .admin = true,
                  .admin_bind = node.address + ":9100",
                  .access_log = true};
  DaemonProcess daemon(spec.yaml(), {}, network.launch("lb"));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Two silent sessions hold the two local ports towards the backend.
  Client first = Client::connect(proxy);
  Client second = Client::connect(proxy);
  const std::string active = "sluice_backend_connections_active{service=\"web\",backend=\"b\",node=\"\"}";
  REQUIRE(wait_metric(admin, active, 2, 5s));

  // The third cannot get a port: closed without a byte, counted as the proxy's own limit.
  Client third = Client::connect(proxy);
  const ReadResult result = third.read_until_end(sluice::test::scaled(Millis(3s)));
  CHECK(result.data.empty());
  CHECK(result.end != End::timeout);
  CHECK(wait_metric(admin, "sluice_listener_connections_rejected_total{listener=\"web\",reason=\"max_connections\"}", 1,
                    5s));
  CHECK(daemon.wait_for_line("connect_local_error service=web backend=b error=EADDRNOTAVAIL", 2s));
  CHECK(daemon.wait_for_line("end=local_error", 2s));
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_connect_failures_total{service=\"web\",backend=\"b\",node=\"\"}") == 0);
  CHECK(metric(text, "sluice_backend_up{service=\"web\",backend=\"b\",node=\"\"}") == 1);
  CHECK(daemon.count_lines("connect_failed") == 0);
  CHECK(metric(text, active) == 2);  // the two sessions that have a port go on
}
