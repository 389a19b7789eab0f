// Backend slots and queues: FIFO order, max_length, timeout, clients that leave or half-close while
// queued, and per-backend queues. Every wait is on a condition: a test backend's state, or a value
// on the daemon's /metrics, polled with a deadline.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "test_support.hpp"

using namespace sluice::it;

namespace {

/// Reads each connection's first line ("client-3"), records it in arrival order, then holds the
/// connection until release_next() lets the oldest held one go: it answers "served LINE\n", shuts
/// down its write side and reads until the peer's EOF. With one slot, the order of the lines is the
/// order in which the daemon dispatched the clients.
class GateServer {
 public:
  GateServer() : server_(AF_INET, [this](ServerConnection& c) { serve(c); }) {}
  ~GateServer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    server_.stop();
  }
  GateServer(const GateServer&) = delete;
  GateServer& operator=(const GateServer&) = delete;

  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

  /// Waits until `count` connections have sent their first line.
  bool wait_arrivals(std::size_t count, Millis timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return arrivals_.size() >= count; });
  }
  std::vector<std::string> arrivals() const {
    std::lock_guard lock(mutex_);
    return arrivals_;
  }
  /// Lets the oldest connection not yet released go (now, or as soon as it arrives).
  void release_next() {
    {
      std::lock_guard lock(mutex_);
      ++released_;
    }
    changed_.notify_all();
  }

 private:
  void serve(ServerConnection& c) {
    std::string line;
    for (char byte = 0;;) {
      if (c.read_some(&byte, 1) != 1) return;
      if (byte == '\n') break;
      line += byte;
    }
    std::size_t index = 0;
    {
      std::unique_lock lock(mutex_);
      index = arrivals_.size();
      arrivals_.push_back(line);
      changed_.notify_all();
      changed_.wait(lock, [&] { return stopping_ || released_ > index; });
      if (stopping_) return;
    }
    if (c.write_all("served " + line + "\n")) {
      c.shutdown_write();
      c.drain();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> arrivals_;
  std::size_t released_ = 0;
  bool stopping_ = false;
  TcpServer server_;  // last: stopped before the members its handler uses
};

const std::string kQueueLength = R"(sluice_service_queue_length{service="web"})";
const std::string kQueueWaitCount = R"(sluice_service_queue_wait_seconds_count{service="web"})";
const std::string kAccepted = R"(sluice_listener_connections_accepted_total{listener="web"})";

std::string rejected(const std::string& reason) {
  return R"(sluice_listener_connections_rejected_total{listener="web",reason=")" + reason + "\"}";
}

/// `name{service="web",backend="BACKEND",node="node-BACKEND"}`: the nodes below are named so.
std::string backend_series(const std::string& name, const std::string& backend) {
  return name + R"({service="web",backend=")" + backend + R"(",node="node-)" + backend + "\"}";
}

BackendSpec one_slot(const std::string& name, const Address& address) {
  return {.name = name, .address = address, .node = "node-" + name, .max_connections = 1};
}

std::string config_with(ServiceSpec service) {
  return ConfigSpec{.listeners = {ListenerSpec{}}, .services = {std::move(service)}, .admin = true}.yaml();
}

Client connect_and_send(const Address& proxy, int number) {
  Client client = Client::connect(proxy);
  client.send_all("client-" + std::to_string(number) + "\n");
  return client;
}

/// The client of a released GateServer connection: its answer, then EOF; then it closes, which
/// ends the session and frees the slot.
void finish_served(Client& client, int number) {
  INFO("client " << number);
  CHECK(client.read_line(2s) == "served client-" + std::to_string(number));
  const ReadResult rest = client.read_until_end(2s);
  CHECK(rest.end == End::eof);
  CHECK(rest.data.empty());
  client.close();
}

/// Connects a client that the daemon must close at once without data (queue full).
void expect_refused(const Address& proxy, int number) {
  const auto start = Clock::now();
  Client client = Client::connect(proxy);
  const ReadResult result = client.read_until_end(2s);
  INFO("client " << number << " ended with " << result.end << " after " << elapsed_ms(start) << " ms");
  CHECK((result.end == End::eof || result.end == End::reset));
  CHECK(result.data.empty());
  CHECK(elapsed_ms(start) < sluice::test::scaled(1000ms).count());
}

}  // namespace

TEST_CASE("shared queue: five clients through one slot are served strictly in arrival order") {
  GateServer gate;
  DaemonProcess daemon(
      config_with({.retries = 0, .backends = {one_slot("solo", gate.address())}, .queue = QueueSpec{}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  std::vector<Client> clients;
  clients.push_back(connect_and_send(proxy, 1));
  REQUIRE(gate.wait_arrivals(1, 2s));
  for (int i = 2; i <= 5; ++i) {
    clients.push_back(connect_and_send(proxy, i));
    double seen = 0;
    REQUIRE_MESSAGE(wait_metric(admin, kQueueLength, i - 1, 2s, &seen),
                    "client " << i << ": queue length " << seen << ", expected " << i - 1);
  }
  std::string text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 4);
  CHECK(metric(text, backend_series("sluice_backend_connections_active", "solo")) == 1);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 1);
  CHECK(metric(text, kAccepted) == 5);
  CHECK(gate.arrivals().size() == 1);

  // The slot is held until the backend connection closes, not when the backend's EOF is passed on:
  // client 1 has its answer and the EOF, but while it keeps its socket open, nobody moves up.
  gate.release_next();
  CHECK(clients[0].read_line(2s) == "served client-1");
  CHECK(clients[0].read_until_end(2s).end == End::eof);
  text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 4);
  CHECK(metric(text, backend_series("sluice_backend_connections_active", "solo")) == 1);
  CHECK(gate.arrivals().size() == 1);
  clients[0].close();

  for (int k = 1; k <= 5; ++k) {
    if (k > 1) {
      gate.release_next();
      finish_served(clients[static_cast<std::size_t>(k - 1)], k);
    }
    if (k == 5) break;
    REQUIRE_MESSAGE(gate.wait_arrivals(static_cast<std::size_t>(k + 1), 2s),
                    "no client reached the backend after client " << k << " was served");
    CHECK(gate.arrivals()[static_cast<std::size_t>(k)] == "client-" + std::to_string(k + 1));
    // The dispatch that sent it there took it off the queue first.
    CHECK(metric(scrape(admin), kQueueLength) == 4 - k);
  }
  CHECK(gate.arrivals() == std::vector<std::string>{"client-1", "client-2", "client-3", "client-4", "client-5"});

  double seen = 0;
  CHECK_MESSAGE(wait_metric(admin, backend_series("sluice_backend_connections_active", "solo"), 0, 2s, &seen),
                "active " << seen);
  text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 0);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 5);
  CHECK(metric(text, kQueueWaitCount) == 5);
  CHECK(metric(text, backend_series("sluice_backend_queue_wait_seconds_count", "solo")) == 5);
  CHECK(metric(text, kAccepted) == 5);
  // Everyone who queued was dispatched, so the integral of the queue length is the sum of the waits
  // (Little's law for the queue, exact: both are taken at the same events).
  const double length_seconds = metric(text, R"(sluice_service_queue_length_seconds_total{service="web"})");
  const double wait_sum = metric(text, R"(sluice_service_queue_wait_seconds_sum{service="web"})");
  INFO("queue length integral " << length_seconds << " s, sum of waits " << wait_sum << " s");
  CHECK(length_seconds > 0);
  CHECK(std::abs(length_seconds - wait_sum) < 0.001);
  for (const char* reason : {"queue_full", "queue_timeout", "abandoned", "no_backend"}) {
    INFO("reason " << reason);
    CHECK(metric(text, rejected(reason)) == 0);
  }
}

TEST_CASE("shared queue with max_length 2: the fourth and fifth clients are refused and counted") {
  GateServer gate;
  DaemonProcess daemon(config_with(
      {.retries = 0, .backends = {one_slot("solo", gate.address())}, .queue = QueueSpec{.max_length = 2}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  std::vector<Client> clients;
  clients.push_back(connect_and_send(proxy, 1));
  REQUIRE(gate.wait_arrivals(1, 2s));
  for (int i = 2; i <= 3; ++i) {
    clients.push_back(connect_and_send(proxy, i));
    REQUIRE(wait_metric(admin, kQueueLength, i - 1, 2s));
  }
  expect_refused(proxy, 4);
  expect_refused(proxy, 5);
  double seen = 0;
  CHECK_MESSAGE(wait_metric(admin, rejected("queue_full"), 2, 2s, &seen), "queue_full " << seen);
  std::string text = scrape(admin);
  CHECK(metric(text, rejected("queue_full")) == 2);
  CHECK(metric(text, kQueueLength) == 2);

  // The two that were queued are still served, in order.
  for (int k = 1; k <= 3; ++k) {
    gate.release_next();
    finish_served(clients[static_cast<std::size_t>(k - 1)], k);
  }
  CHECK(gate.arrivals() == std::vector<std::string>{"client-1", "client-2", "client-3"});
  CHECK(wait_metric(admin, backend_series("sluice_backend_connections_active", "solo"), 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, rejected("queue_full")) == 2);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 3);
  CHECK(metric(text, kQueueWaitCount) == 3);
  CHECK(gate.accepted() == 3);
}

TEST_CASE("shared queue timeout 300ms: a queued client is closed after about 300 ms and counted") {
  GateServer gate;
  DaemonProcess daemon(config_with(
      {.retries = 0, .backends = {one_slot("solo", gate.address())}, .queue = QueueSpec{.timeout = "300ms"}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client holder = connect_and_send(proxy, 1);
  REQUIRE(gate.wait_arrivals(1, 2s));

  const auto start = Clock::now();
  Client waiting = connect_and_send(proxy, 2);
  const ReadResult result = waiting.read_until_end(3s);
  const auto closed_ms = elapsed_ms(start);
  INFO("the queued client ended with " << result.end << " after " << closed_ms << " ms");
  CHECK((result.end == End::eof || result.end == End::reset));
  CHECK(result.data.empty());
  CHECK(closed_ms >= 250);
  CHECK(closed_ms < sluice::test::scaled(2000ms).count());

  double seen = 0;
  CHECK_MESSAGE(wait_metric(admin, rejected("queue_timeout"), 1, 2s, &seen), "queue_timeout " << seen);
  std::string text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 0);
  CHECK(metric(text, rejected("abandoned")) == 0);
  // One client waited the 300 ms (libuv timers count whole loop milliseconds: a hair less is fine).
  const double length_seconds = metric(text, R"(sluice_service_queue_length_seconds_total{service="web"})");
  CHECK(length_seconds >= 0.295);
  CHECK(length_seconds < 0.5);

  // The slot holder is unaffected, and the timed-out client never reaches the backend.
  gate.release_next();
  finish_served(holder, 1);
  CHECK(wait_metric(admin, backend_series("sluice_backend_connections_active", "solo"), 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, rejected("queue_timeout")) == 1);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 1);
  CHECK(gate.accepted() == 1);
}

TEST_CASE("shared queue: a queued client that resets leaves the queue at once, counted abandoned") {
  GateServer gate;
  DaemonProcess daemon(
      config_with({.retries = 0, .backends = {one_slot("solo", gate.address())}, .queue = QueueSpec{}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client holder = connect_and_send(proxy, 1);
  REQUIRE(gate.wait_arrivals(1, 2s));
  Client leaving = connect_and_send(proxy, 2);
  REQUIRE(wait_metric(admin, kQueueLength, 1, 2s));

  const auto start = Clock::now();
  leaving.close_with_reset();
  double seen = 0;
  CHECK_MESSAGE(wait_metric(admin, kQueueLength, 0, 1s, &seen),
                "queue length " << seen << " 1 s after the queued client reset (the queue timeout is 5 s)");
  MESSAGE("the reset client left the queue within " << elapsed_ms(start) << " ms");
  CHECK(wait_metric(admin, rejected("abandoned"), 1, 1s));
  std::string text = scrape(admin);
  CHECK(metric(text, rejected("abandoned")) == 1);
  CHECK(metric(text, rejected("queue_timeout")) == 0);

  // Freeing the slot must not dispatch the client that left.
  gate.release_next();
  finish_served(holder, 1);
  CHECK(wait_metric(admin, backend_series("sluice_backend_connections_active", "solo"), 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 1);
  CHECK(metric(text, kQueueWaitCount) == 1);
  CHECK(gate.accepted() == 1);
}

TEST_CASE("shared queue: a client that half-closes while queued is served after dispatch, bytes and EOF") {
  ReplyAfterEofServer server("reply\n");
  // At debug level the daemon says when it has read a queued client's EOF.
  DaemonProcess daemon(config_with({.retries = 0,
                                    .backends = {one_slot("solo", server.address())},
                                    .queue = QueueSpec{}}),
                       {"--log-level", "debug"});
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string active = backend_series("sluice_backend_connections_active", "solo");

  Client holder = Client::connect(proxy);
  holder.send_all("first");  // no EOF: the server waits for it, and the slot stays held
  REQUIRE(wait_metric(admin, active, 1, 2s));

  Client client = Client::connect(proxy);
  REQUIRE(wait_metric(admin, kQueueLength, 1, 2s));
  client.send_all("req");
  client.shutdown_write();  // `printf req | nc -N`: a normal client
  // Once the daemon has read the EOF while the client waits, it must still keep the client:
  // HAProxy would have dropped it here.
  REQUIRE_MESSAGE(daemon.wait_for_line("queued_client_eof listener=web service=web", sluice::test::scaled(2s)),
                  "the daemon never read the queued client's EOF");
  std::string text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 1);
  CHECK(metric(text, rejected("abandoned")) == 0);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 1);

  holder.shutdown_write();
  const ReadResult first = holder.read_until_end(2s);
  CHECK(first.end == End::eof);
  CHECK(first.data == "reply\n");
  holder.close();

  const ReadResult result = client.read_until_end(3s);
  CHECK(result.end == End::eof);
  CHECK(result.data == "reply\n");
  std::vector<std::string> requests;
  REQUIRE_MESSAGE(server.wait_requests(2, 2s, requests), "the queued client's EOF never reached the backend");
  CHECK(requests == std::vector<std::string>{"first", "req"});

  CHECK(wait_metric(admin, active, 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, kQueueLength) == 0);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "solo")) == 2);
  CHECK(metric(text, kQueueWaitCount) == 2);
  CHECK(metric(text, rejected("abandoned")) == 0);
}

TEST_CASE("per_backend queues with round robin: each backend serves its own FIFO") {
  GateServer a;
  GateServer b;
  DaemonProcess daemon(config_with({.policy = "round_robin",
                                    .retries = 0,
                                    .backends = {one_slot("a", a.address()), one_slot("b", b.address())},
                                    .queue = QueueSpec{.mode = "per_backend"}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const auto queue_of = [](const std::string& backend) {
    return backend_series("sluice_backend_queue_length", backend);
  };
  const auto active_of = [](const std::string& backend) {
    return backend_series("sluice_backend_connections_active", backend);
  };

  // Each client is accepted (and so dispatched or queued) before the next one connects.
  std::vector<Client> clients;
  for (int i = 1; i <= 6; ++i) {
    clients.push_back(connect_and_send(proxy, i));
    REQUIRE_MESSAGE(wait_metric(admin, kAccepted, i, 2s), "client " << i << " not accepted");
  }
  REQUIRE(a.wait_arrivals(1, 2s));
  REQUIRE(b.wait_arrivals(1, 2s));
  // Round robin alternates at arrival; a takes 1, 3, 5 and b takes 2, 4, 6 (or the other way
  // round: the backend that got client 1 is called `first`).
  const bool a_first = a.arrivals().front() == "client-1";
  GateServer& first = a_first ? a : b;
  GateServer& second = a_first ? b : a;
  const std::string first_name = a_first ? "a" : "b";
  const std::string second_name = a_first ? "b" : "a";
  CHECK(second.arrivals().front() == "client-2");

  std::string text = scrape(admin);
  CHECK(metric(text, queue_of("a")) == 2);
  CHECK(metric(text, queue_of("b")) == 2);
  CHECK(metric(text, active_of("a")) == 1);
  CHECK(metric(text, active_of("b")) == 1);
  CHECK(metric(text, kQueueLength) == 0);  // the shared queue is not used

  // The first backend serves its three while the second holds: the second's queue is untouched.
  for (int number : {1, 3, 5}) {
    REQUIRE(first.wait_arrivals(static_cast<std::size_t>((number + 1) / 2), 2s));
    first.release_next();
    finish_served(clients[static_cast<std::size_t>(number - 1)], number);
  }
  CHECK(first.arrivals() == std::vector<std::string>{"client-1", "client-3", "client-5"});
  CHECK(wait_metric(admin, active_of(first_name), 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, queue_of(first_name)) == 0);
  CHECK(metric(text, queue_of(second_name)) == 2);
  CHECK(metric(text, active_of(second_name)) == 1);
  CHECK(second.arrivals().size() == 1);

  for (int number : {2, 4, 6}) {
    REQUIRE(second.wait_arrivals(static_cast<std::size_t>(number / 2), 2s));
    second.release_next();
    finish_served(clients[static_cast<std::size_t>(number - 1)], number);
  }
  CHECK(second.arrivals() == std::vector<std::string>{"client-2", "client-4", "client-6"});
  CHECK(wait_metric(admin, active_of(second_name), 0, 2s));
  text = scrape(admin);
  for (const std::string backend : {"a", "b"}) {
    INFO("backend " << backend);
    CHECK(metric(text, queue_of(backend)) == 0);
    CHECK(metric(text, backend_series("sluice_backend_connections_total", backend)) == 3);
    CHECK(metric(text, backend_series("sluice_backend_queue_wait_seconds_count", backend)) == 3);
    CHECK(metric(text, backend_series("sluice_backend_queue_length_seconds_total", backend)) > 0);
  }
  CHECK(metric(text, kQueueWaitCount) == 6);
}

TEST_CASE("per_backend queues with least_connections count the queued: after two leave b, b gets the next two") {
  // Two one-slot backends; six clients make 1 active + 2 queued on each (the loads are equal after
  // every second client, whatever the tie rule). Two of b's queued clients reset: b's load is 1,
  // a's 3. Counting active + queued, clients 7 and 8 must both go to b. Counting only the active
  // ones (1 and 1), the tie cursor would move past its first winner and give one of them to a.
  GateServer a;
  GateServer b;
  DaemonProcess daemon(config_with({.policy = "least_connections",
                                    .retries = 0,
                                    .backends = {one_slot("a", a.address()), one_slot("b", b.address())},
                                    .queue = QueueSpec{.mode = "per_backend"}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const auto queue_of = [](const std::string& backend) {
    return backend_series("sluice_backend_queue_length", backend);
  };

  std::vector<Client> clients;
  for (int i = 1; i <= 6; ++i) {
    clients.push_back(connect_and_send(proxy, i));
    REQUIRE_MESSAGE(wait_metric(admin, kAccepted, i, 2s), "client " << i << " not accepted");
  }
  REQUIRE(a.wait_arrivals(1, 2s));
  REQUIRE(b.wait_arrivals(1, 2s));
  std::string text = scrape(admin);
  CHECK(metric(text, queue_of("a")) == 2);
  CHECK(metric(text, queue_of("b")) == 2);

  // Which clients wait for b: those that follow b's first one in the alternation.
  const int b_first = b.arrivals().front() == "client-1" ? 1 : 2;
  CHECK(a.arrivals().front() == "client-" + std::to_string(3 - b_first));
  for (int number : {b_first + 2, b_first + 4}) clients[static_cast<std::size_t>(number - 1)].close_with_reset();
  double seen = 0;
  REQUIRE_MESSAGE(wait_metric(admin, queue_of("b"), 0, 1s, &seen), "b's queue length " << seen);
  CHECK(wait_metric(admin, rejected("abandoned"), 2, 1s));

  for (int i = 7; i <= 8; ++i) {
    clients.push_back(connect_and_send(proxy, i));
    REQUIRE_MESSAGE(wait_metric(admin, kAccepted, i, 2s), "client " << i << " not accepted");
  }
  text = scrape(admin);
  CHECK(metric(text, queue_of("b")) == 2);
  CHECK(metric(text, queue_of("a")) == 2);

  // b serves its FIFO: its first client, then 7 and 8; the two that left never reach it.
  for (int number : {b_first, 7, 8}) {
    CHECK(b.arrivals().back() == "client-" + std::to_string(number));
    const auto served = b.arrivals().size();
    b.release_next();
    finish_served(clients[static_cast<std::size_t>(number - 1)], number);
    if (number != 8) REQUIRE(b.wait_arrivals(served + 1, 2s));
  }
  CHECK(b.arrivals() ==
        std::vector<std::string>{"client-" + std::to_string(b_first), "client-7", "client-8"});
  CHECK(wait_metric(admin, backend_series("sluice_backend_connections_active", "b"), 0, 2s));
  text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "b")) == 3);
  CHECK(metric(text, queue_of("a")) == 2);
}

// Once a queued client's EOF has been read, libuv no longer reads its socket: the daemon must still
// see a reset that follows (it watches the socket for errors), or the dead client would be served.
TEST_CASE("shared queue: a queued client that half-closes and then resets leaves the queue at once") {
  GateServer gate;
  DaemonProcess daemon(
      config_with({.retries = 0, .backends = {one_slot("solo", gate.address())}, .queue = QueueSpec{}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client holder = connect_and_send(proxy, 1);
  REQUIRE(gate.wait_arrivals(1, 2s));
  Client leaving = connect_and_send(proxy, 2);
  REQUIRE(wait_metric(admin, kQueueLength, 1, 2s));
  leaving.shutdown_write();
  std::this_thread::sleep_for(100ms);  // the daemon reads the EOF first (the scenario, not a wait for a result)
  leaving.close_with_reset();
  double seen = 0;
  CHECK_MESSAGE(wait_metric(admin, kQueueLength, 0, 1s, &seen),
                "queue length " << seen << " 1 s after the half-closed queued client reset");
  CHECK(metric(scrape(admin), rejected("abandoned")) == 1);

  gate.release_next();
  finish_served(holder, 1);
  CHECK(wait_metric(admin, backend_series("sluice_backend_connections_active", "solo"), 0, 2s));
  CHECK(metric(scrape(admin), backend_series("sluice_backend_connections_total", "solo")) == 1);
  CHECK(gate.accepted() == 1);
}
