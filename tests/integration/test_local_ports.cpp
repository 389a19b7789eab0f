// Running out of local ports towards a backend (EADDRNOTAVAIL at connect) is the proxy's own
// limit, never the backend's fault. The daemon and its backend run in a network namespace whose
// ephemeral port range holds two ports, so a third concurrent session (or, in mode http, request)
// cannot get one. Needs root.

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "harness.hpp"
#include "netns.hpp"
#include "test_support.hpp"

using namespace sluice::it;

namespace {

// A node whose ephemeral port range holds two ports, and a sluice-backend in it on port 8000
// (`extra` added to its command line).
struct TwoPortNode {
  NetnsNetwork network{{"lb"}, 3};
  const NetnsNode& node = network.node("lb");
  Address backend_address{node.address, 8000};
  std::unique_ptr<DaemonProcess> backend;

  explicit TwoPortNode(const std::vector<std::string>& extra = {}) {
    const CommandResult sysctl =
        network.run("lb", {"/usr/sbin/sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40001"});
    REQUIRE_MESSAGE(sysctl.exit_code == 0, sysctl.output);
    std::vector<std::string> argv = {SLUICE_BACKEND_BINARY, "--listen", backend_address.to_string(), "--name", "b"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    backend = std::make_unique<DaemonProcess>(Command{argv}, network.launch("lb"));
    REQUIRE(backend->wait_for_line("sluice-backend b listening on " + backend_address.to_string(), 5s));
  }

  // Fixed ports: a bind to port 0 would take the two ephemeral ones.
  ConfigSpec config(const std::string& mode = "") const {
    return ConfigSpec{.listeners = {ListenerSpec{.bind = node.address + ":8080", .mode = mode}},
                      .services = {ServiceSpec{.retries = 2, .backends = {{"b", backend_address}}}},
                      .admin = true,
                      .admin_bind = node.address + ":9100",
                      .access_log = true};
  }
};

const std::string kActive = "sluice_backend_connections_active{service=\"web\",backend=\"b\",node=\"\"}";

// The proxy's own limit, never the backend's fault: no failure counted against it, still up.
void check_backend_unblamed(DaemonProcess& daemon, const Address& admin) {
  CHECK(wait_metric(admin, "sluice_listener_connections_rejected_total{listener=\"web\",reason=\"max_connections\"}", 1,
                    5s));
  CHECK(daemon.wait_for_line("connect_local_error service=web backend=b error=EADDRNOTAVAIL", 2s));
  CHECK(daemon.wait_for_line("end=local_error", 2s));
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_connect_failures_total{service=\"web\",backend=\"b\",node=\"\"}") == 0);
  CHECK(metric(text, "sluice_backend_up{service=\"web\",backend=\"b\",node=\"\"}") == 1);
  CHECK(daemon.count_lines("connect_failed") == 0);
  CHECK(metric(text, kActive) == 2);  // the two that have a port go on
}

}  // namespace

TEST_CASE("local ports: out of ephemeral ports towards a backend, the client is refused as local_error and the backend keeps its record") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  TwoPortNode lb;
  DaemonProcess daemon(lb.config().yaml(), {}, lb.network.launch("lb"));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Two silent sessions hold the two local ports towards the backend.
  Client first = Client::connect(proxy);
  Client second = Client::connect(proxy);
  REQUIRE(wait_metric(admin, kActive, 2, 5s));

  // The third cannot get a port: closed without a byte, counted as the proxy's own limit.
  Client third = Client::connect(proxy);
  const ReadResult result = third.read_until_end(sluice::test::scaled(Millis(3s)));
  CHECK(result.data.empty());
  CHECK(result.end != End::timeout);
  check_backend_unblamed(daemon, admin);
}

TEST_CASE("local ports: mode http, a request that cannot get a local port is answered 503 local_error, never the backend's fault") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  // Each request is held 5 s at the backend, keeping its pooled connection's port.
  TwoPortNode lb({"--mean-service", "5s", "--distribution", "constant"});
  DaemonProcess daemon(lb.config("http").yaml(), {}, lb.network.launch("lb"));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client first = Client::connect(proxy);
  first.send_all("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
  Client second = Client::connect(proxy);
  second.send_all("GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(wait_metric(admin, kActive, 2, 5s));

  Client third = Client::connect(proxy);
  third.send_all("GET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto answer = read_response(third, sluice::test::scaled(Millis(3s)));
  CHECK(answer.head.status == 503);
  CHECK(answer.head.header("Retry-After") == "1");
  CHECK(metric(scrape(admin), "sluice_http_errors_total{listener=\"web\",reason=\"local_error\"}") == 1);
  CHECK(daemon.wait_for_line("method=GET path=/3 status=503", 2s));
  check_backend_unblamed(daemon, admin);
}
