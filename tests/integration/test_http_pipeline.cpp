// mode: http with http.pipeline_depth: pipelined requests of one client connection dispatched at
// once, each its own job, answered in request order. Three one-slot backends that hold every
// request until the test releases it (held_backends.hpp), so what is in service at once and which
// response completes first is the test's choice; slots, queue and bytes read from each backend are
// checked in /metrics.

#include <doctest/doctest.h>
#include <poll.h>

#include <csignal>

#include <string>
#include <vector>

#include "harness.hpp"
#include "held_backends.hpp"
#include "http_backend.hpp"

using namespace sluice::it;

namespace {

const char* const kNames[] = {"a", "b", "c"};

ConfigSpec held_config(const HeldBackends& backends, std::uint32_t depth) {
  ServiceSpec service{.policy = "round_robin", .queue = QueueSpec{}};
  for (int i = 0; i < 3; ++i) service.backends.push_back({.name = kNames[i], .address = backends.address(i), .max_connections = 1});
  return ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}},
                    .services = {service},
                    .admin = true,
                    .http = "{ pipeline_depth: " + std::to_string(depth) + " }"};
}

std::string get(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"; }

std::string series(const std::string& name, int backend) {
  return name + "{service=\"web\",backend=\"" + kNames[backend] + "\",node=\"\"}";
}

// Requests in service now over the three backends, as Sluice's slot gauges say.
double active_slots(const std::string& text) {
  double sum = 0;
  for (int i = 0; i < 3; ++i) sum += metric(text, series("sluice_backend_connections_active", i));
  return sum;
}

bool wait_active(const Address& admin, double slots, Millis timeout = 5s) {
  return wait_scrape(admin, [&](const std::string& text) { return active_slots(text) == slots; }, timeout).has_value();
}

// Whether the client has a byte to read (or an EOF) at this moment.
bool readable_now(Client& client) {
  pollfd p{client.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

const std::string kQueueLength = "sluice_service_queue_length{service=\"web\"}";

}  // namespace

TEST_CASE("http pipeline: with depth 4 three pipelined GETs are in service at once on three backends, the fourth waits in Sluice's queue, answers in request order") {
  HeldBackends backends(3);
  DaemonProcess daemon(held_config(backends, 4).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  client.send_all(get("/1") + get("/2") + get("/3") + get("/4"));
  REQUIRE(backends.wait_holding(3, 5s));
  REQUIRE(wait_metric(admin, kQueueLength, 1, 5s));  // the fourth: in Sluice's FIFO, not in the client's bytes
  CHECK(wait_active(admin, 3));
  for (int i = 0; i < 3; ++i) CHECK(metric(scrape(admin), series("sluice_backend_connections_active", i)) == 1);

  // The third completes first, then the second: both wait for the first, their slots already free.
  backends.release("/3");
  backends.release("/2");
  REQUIRE(backends.wait_arrived(4, 5s));
  CHECK(backends.wait_holding(2, 5s));  // /1 and /4 (dispatched to a freed slot) ...
  CHECK(wait_metric(admin, kQueueLength, 0, 5s));
  CHECK(wait_active(admin, 2));  // ... hold the two slots left; /2 and /3 wait for their turn without one
  CHECK_FALSE(readable_now(client));
  backends.release("/1");
  backends.release("/4");
  for (const char* path : {"/1", "/2", "/3", "/4"}) {
    const auto response = read_response(client, 5s);
    CHECK(response.head.status == 200);
    CHECK(response.body == HeldBackends::answer_body(path));
  }
  CHECK(wait_active(admin, 0));
  CHECK(backends.max_holding() == 3);
}

TEST_CASE("http pipeline: with depth 1 (the default) pipelined GETs are served one at a time") {
  HeldBackends backends(3);
  DaemonProcess daemon(held_config(backends, 1).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  client.send_all(get("/1") + get("/2") + get("/3"));
  for (const char* path : {"/1", "/2", "/3"}) {
    REQUIRE(backends.wait_holding(1, 5s));
    CHECK(metric(scrape(admin), "sluice_listener_http_requests_total{listener=\"web\"}") ==
          static_cast<double>(backends.arrived().size()));  // the next head is not even read
    CHECK(metric(scrape(admin), kQueueLength) == 0);
    backends.release(path);
    CHECK(read_response(client, 5s).body == HeldBackends::answer_body(path));
  }
  CHECK(backends.max_holding() == 1);
}

TEST_CASE("http pipeline: a POST is not dispatched until the GETs before it are answered, nor a GET after it until it is") {
  HeldBackends backends(3);
  DaemonProcess daemon(held_config(backends, 4).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  client.send_all(get("/1") + get("/2") + "POST /3 HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello" + get("/4"));
  REQUIRE(backends.wait_holding(2, 5s));
  // The POST's head is read (3 heads), but it waits: nothing more reaches a backend or the queue.
  REQUIRE(wait_metric(admin, "sluice_listener_http_requests_total{listener=\"web\"}", 3, 5s));
  CHECK(metric(scrape(admin), kQueueLength) == 0);
  CHECK(backends.arrived().size() == 2);
  backends.release("/2");
  CHECK(wait_active(admin, 1));  // /2 done and waiting for /1; the POST still not sent
  CHECK_FALSE(readable_now(client));
  CHECK(backends.arrived().size() == 2);
  backends.release("/1");
  CHECK(read_response(client, 5s).body == HeldBackends::answer_body("/1"));
  CHECK(read_response(client, 5s).body == HeldBackends::answer_body("/2"));
  REQUIRE(backends.wait_holding(1, 5s));
  const std::vector<std::string> arrived = backends.arrived();  // /1 and /2 in either order, then /3 alone
  REQUIRE(arrived.size() == 3);
  CHECK(arrived[2] == "/3");
  CHECK(metric(scrape(admin), "sluice_listener_http_requests_total{listener=\"web\"}") == 3);  // /4 not read
  backends.release("/3");
  CHECK(read_response(client, 5s).body == HeldBackends::answer_body("/3"));
  REQUIRE(backends.wait_holding(1, 5s));
  backends.release("/4");
  CHECK(read_response(client, 5s).body == HeldBackends::answer_body("/4"));
  CHECK(backends.max_holding() == 2);
}

TEST_CASE("http pipeline: a 4 MiB response completed ahead of its turn is delivered whole and in order, buffered within bounds") {
  HeldBackends backends(3);
  DaemonProcess daemon(held_config(backends, 4).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  constexpr std::size_t kBig = std::size_t{4} << 20;
  const std::string big = "/big/" + std::to_string(kBig);

  Client client = Client::connect(proxy);
  client.send_all(get("/1") + get(big));
  REQUIRE(backends.wait_holding(2, 5s));
  backends.release(big);
  // Sluice reads the big answer only as far as its buffer (64 KiB beyond one 32 KiB read) while
  // /1 is in service: what it has taken from that backend stays far below the body.
  std::string last;
  const bool read_whole =
      wait_scrape(admin, [&](const std::string& text) {
        double read = 0;
        for (int i = 0; i < 3; ++i) read += metric(text, series("sluice_backend_received_bytes_total", i));
        return read >= static_cast<double>(kBig);
      }, 1s, &last).has_value();
  CHECK_FALSE(read_whole);
  double read = 0;
  for (int i = 0; i < 3; ++i) read += metric(last, series("sluice_backend_received_bytes_total", i));
  CHECK(read >= 64.0 * 1024);
  CHECK(read <= 128.0 * 1024);
  CHECK(wait_active(admin, 2));  // its slot is held while the answer cannot be taken whole

  backends.release("/1");
  CHECK(read_response(client, 5s).body == HeldBackends::answer_body("/1"));
  const auto response = read_http_response(client, 10s);
  CHECK(response.head.status == 200);
  CHECK(response.body.size() == kBig);
  CHECK(sha256_hex(response.body) == sha256_hex(HeldBackends::answer_body(big)));
  CHECK(wait_active(admin, 0));
}

TEST_CASE("http pipeline: a client that goes away mid-pipeline releases every slot and queue place, and the daemon stops cleanly") {
  HeldBackends backends(3);
  DaemonProcess daemon(held_config(backends, 8).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Reset: every exchange aborted at once, the held requests' backend connections closed.
  Client reset = Client::connect(proxy);
  reset.send_all(get("/r1") + get("/r2") + get("/r3") + get("/r4") + get("/r5"));
  REQUIRE(backends.wait_holding(3, 5s));
  REQUIRE(wait_metric(admin, kQueueLength, 2, 5s));
  reset.close_with_reset();
  CHECK(wait_metric(admin, kQueueLength, 0, 5s));
  CHECK(wait_active(admin, 0));
  CHECK(backends.wait_holding(0, 5s));
  CHECK(backends.abandoned() == 3);

  // Closed after its requests: the client's reset after the first answer aborts the rest.
  Client closed = Client::connect(proxy);
  closed.send_all(get("/c1") + get("/c2") + get("/c3"));
  REQUIRE(backends.wait_holding(3, 5s));
  closed.close();
  backends.release("/c1");
  CHECK(wait_active(admin, 0));
  CHECK(backends.wait_holding(0, 5s));
  CHECK(backends.abandoned() >= 4);

  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(10s) == 0);
}
