// `workers: N`: N event loops on one port (SO_REUSEPORT), their metrics summed, reload and drain
// reaching every one of them, slots and queues that are each worker's own, and backends that are
// checked and resolved once for the process, with the failed client connects of every worker.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;

namespace {

std::set<std::string> thread_names(pid_t pid) {
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  return names;
}

constexpr const char* kAccepted = R"(sluice_listener_connections_accepted_total{listener="web"})";
constexpr const char* kWorker1 = R"(sluice_worker_connections_accepted_total{worker="1"})";
constexpr const char* kWorker2 = R"(sluice_worker_connections_accepted_total{worker="2"})";
constexpr const char* kReloadsOk = R"(sluice_config_reloads_total{result="success"})";

using sluice::test::scaled;

/// Reads each connection's first line ("client-3") and records it, answers "served LINE\n", then
/// holds the connection until the client closes it.
class LineHoldServer {
 public:
  LineHoldServer() : server_(AF_INET, [this](ServerConnection& c) { serve(c); }) {}
  const Address& address() const { return server_.address(); }
  bool wait_arrivals(std::size_t count, Millis timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return arrivals_.size() >= count; });
  }
  std::vector<std::string> arrivals() const {
    std::lock_guard lock(mutex_);
    return arrivals_;
  }

 private:
  void serve(ServerConnection& c) {
    std::string line;
    for (char byte = 0;;) {
      if (c.read_some(&byte, 1) != 1) return;
      if (byte == '\n') break;
      line += byte;
    }
    {
      std::lock_guard lock(mutex_);
      arrivals_.push_back(line);
    }
    changed_.notify_all();
    if (c.write_all("served " + line + "\n")) c.drain();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> arrivals_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

/// `name{service="web",backend="BACKEND",node="n-BACKEND"}`.
std::string series(const std::string& name, const std::string& backend) {
  return name + R"({service="web",backend=")" + backend + R"(",node="n-)" + backend + "\"}";
}

/// sluice-backend (HTTP, answers "backend=NAME ...") on `address`.
std::unique_ptr<DaemonProcess> start_http_backend(const std::string& name, const Address& address) {
  auto backend = std::make_unique<DaemonProcess>(
      Command{{SLUICE_BACKEND_BINARY, "--listen", address.to_string(), "--name", name}});
  if (!backend->wait_for_line("listening on", scaled(Millis(5s))))
    throw std::runtime_error("sluice-backend " + name + " did not start");
  return backend;
}

/// A backend the test drives by hand: it accepts only when asked and holds what it accepted; it can
/// stop listening and keep its port (later connects are refused) and the connections it holds.
class ManualBackend {
 public:
  ManualBackend() : listen_fd_(bind_tcp_socket(Address::loopback(AF_INET))), address_(local_address(listen_fd_.get())) {
    if (::listen(listen_fd_.get(), 64) != 0) throw_errno("listen", errno);
  }
  const Address& address() const { return address_; }

  /// The next connection and the first line it sends ("" when it ends without one: a health
  /// check); an empty Fd when none comes within `timeout`.
  std::pair<Fd, std::string> accept(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    if (poll_until(listen_fd_.get(), POLLIN, deadline) == 0) return {};
    Fd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) throw_errno("accept4", errno);
    std::string line;
    for (char byte = 0; poll_until(fd.get(), POLLIN, deadline) != 0;) {
      if (::recv(fd.get(), &byte, 1, 0) != 1 || byte == '\n') break;
      line += byte;
    }
    return {std::move(fd), line};
  }
  /// The next connection that is not a health check, with its first line.
  std::pair<Fd, std::string> accept_client(Millis timeout) {
    for (;;) {
      auto accepted = accept(timeout);
      if (!accepted.first || !accepted.second.empty()) return accepted;
    }
  }
  /// Stops listening (shutdown of a listening socket closes its queue and leaves it bound).
  void refuse() {
    if (::shutdown(listen_fd_.get(), SHUT_RD) != 0) throw_errno("shutdown", errno);
  }

 private:
  Fd listen_fd_;
  Address address_;
};

/// Waits until `count` lines contain `text`.
bool wait_line_count(DaemonProcess& daemon, const std::string& text, std::size_t count, Millis timeout) {
  std::size_t seen = 0;
  return daemon
      .wait_for_line([&](const std::string& line) { return line.find(text) != std::string::npos && ++seen >= count; },
                     timeout)
      .has_value();
}

}  // namespace

TEST_CASE("workers: two event loops share one port, their metrics add up, a reload reaches both") {
  NameServer a("a"), b("b"), c("c");
  TempConfig file(name_servers_config({&a, &b}, 2));
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  CHECK(daemon.wait_for_line("workers=2", 1s));
  CHECK(thread_names(daemon.pid()).count("sluice-w2") == 1);

  // New connections, each from a new source port: the kernel hashes them over both listeners.
  constexpr int kClients = 200;
  int served = 0;
  for (int i = 0; i < kClients; ++i) {
    const std::string name = served_by(proxy);
    served += name == "a" || name == "b";
  }
  CHECK(served == kClients);
  CHECK(a.accepted() + b.accepted() == kClients);
  // Each worker round-robins on its own, so together a and b still get about half each.
  CHECK(a.accepted() >= kClients / 4);
  CHECK(b.accepted() >= kClients / 4);

  std::string text;
  REQUIRE(wait_scrape(admin, [&](const std::string& t) { return find_metric(t, kAccepted) == kClients; }, 5s, &text));
  const double worker1 = metric(text, kWorker1);
  const double worker2 = metric(text, kWorker2);
  MESSAGE("accepted by worker 1: " << worker1 << ", by worker 2: " << worker2);
  CHECK(worker1 + worker2 == kClients);
  CHECK(worker1 > 0);
  CHECK(worker2 > 0);
  const double to_a = metric(text, R"(sluice_backend_connections_total{service="web",backend="a",node=""})");
  const double to_b = metric(text, R"(sluice_backend_connections_total{service="web",backend="b",node=""})");
  CHECK(to_a == static_cast<double>(a.accepted()));
  CHECK(to_b == static_cast<double>(b.accepted()));
  CHECK(metric(text, R"(sluice_backend_up{service="web",backend="a",node=""})") == 1);
  const auto build_info = text.find("\nsluice_build_info{");
  REQUIRE(build_info != std::string::npos);
  CHECK(text.substr(text.find('}', build_info), 4) == "} 1\n");  // the maximum, not a sum
  CHECK(text.find("# TYPE sluice_listener_connections_accepted_total counter") != std::string::npos);

  // A reload reaches both loops: every new connection, whichever worker takes it, goes to c.
  file.write(name_servers_config({&c}, 2));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_scrape(admin, [](const std::string& t) { return find_metric(t, kReloadsOk) >= 1; }, 5s));
  for (int i = 0; i < 60; ++i) CHECK(served_by(proxy) == "c");
  CHECK(c.accepted() == 60);

  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(5s) == 0);
}

TEST_CASE("workers: SIGTERM drains sessions on every worker, then the process exits 0") {
  EchoServer echo;
  ConfigSpec spec;
  spec.workers = 2;
  spec.admin = true;
  spec.drain_timeout = "10s";
  spec.listeners = {ListenerSpec{}};
  ServiceSpec service;
  service.backends = {{"echo", echo.address()}};
  spec.services = {service};
  DaemonProcess daemon(spec.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Enough sessions that both workers hold some (checked below, not assumed).
  std::vector<Client> clients;
  for (int i = 0; i < 16; ++i) {
    const std::string line = "hello " + std::to_string(i);
    clients.push_back(Client::connect(proxy));
    clients.back().send_all(line + "\n");
    CHECK(clients.back().read_line() == line);
  }
  const std::string text = scrape(admin);
  CHECK(metric(text, kWorker1) > 0);
  CHECK(metric(text, kWorker2) > 0);

  daemon.send_signal(SIGTERM);
  REQUIRE(daemon.wait_for_line("draining 16 sessions", 2s));
  // Listeners are closed on both workers; open sessions on both keep flowing.
  bool refused = false;
  for (int attempt = 0; attempt < 40 && !refused; ++attempt) {
    try {
      Client::connect(proxy);
      std::this_thread::sleep_for(50ms);
    } catch (const std::exception&) {
      refused = true;
    }
  }
  CHECK(refused);
  for (int i = 0; i < 16; ++i) {
    const std::string line = "still " + std::to_string(i);
    clients[i].send_all(line + "\n");
    CHECK(clients[i].read_line() == line);
  }
  CHECK(daemon.running());
  clients.clear();  // the last session on each worker ends its drain
  CHECK(daemon.wait_exit(5s) == 0);
}

TEST_CASE("workers: auto runs one event loop per core") {
  NameServer a("a");
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  ServiceSpec service;
  service.backends = {{"a", a.address()}};
  spec.services = {service};
  std::string yaml = spec.yaml();
  yaml = "workers: auto\n" + yaml;
  DaemonProcess daemon(yaml);
  daemon.wait_listening_on("web");
  const unsigned cores = std::thread::hardware_concurrency();
  CHECK(daemon.wait_for_line("workers=" + std::to_string(cores), 1s));
  CHECK(thread_names(daemon.pid()).count("sluice-w" + std::to_string(cores)) == (cores > 1 ? 1 : 0));
}

TEST_CASE("workers: a second SIGTERM during the drain closes the sessions of every worker at once, exit 0") {
  EchoServer echo;
  ConfigSpec spec{.workers = 2, .drain_timeout = "30s", .listeners = {ListenerSpec{}}, .admin = true,
                  .access_log = true};
  spec.services = {ServiceSpec{.backends = {{"echo", echo.address()}}}};
  DaemonProcess daemon(spec.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  std::vector<Client> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(Client::connect(proxy));
    clients.back().send_all("hello\n");
    REQUIRE(clients.back().read_line() == "hello");
  }
  const std::string text = scrape(admin);
  REQUIRE(metric(text, kWorker1) > 0);  // sessions on both workers
  REQUIRE(metric(text, kWorker2) > 0);

  daemon.send_signal(SIGTERM);
  REQUIRE(daemon.wait_for_line("draining 16 sessions", scaled(Millis(2s))));
  daemon.send_signal(SIGTERM);
  const auto start = Clock::now();
  const auto deadline = start + scaled(Millis(3s));  // for all of them together
  for (auto& client : clients) {
    const ReadResult result =
        client.read_until_end(std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now())));
    INFO("a session ended with " << result.end << " " << elapsed_ms(start) << " ms after the second SIGTERM");
    CHECK((result.end == End::eof || result.end == End::reset));
    CHECK(result.data.empty());
  }
  const auto code = daemon.wait_exit(scaled(Millis(3s)));
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after the second SIGTERM (drain_timeout 30 s)");
  CHECK(*code == 0);
  CHECK(daemon.count_lines("during drain: closing 16 sessions now") == 1);
  CHECK(daemon.count_lines(" end=shutdown") == 16);
  CHECK(daemon.count_lines("drain timeout") == 0);
}

TEST_CASE("workers: a backend that goes down is taken out once for the process, and comes back on both workers") {
  RefusedPort reserved;  // b's port, for its restart
  const Address b_address = reserved.address();
  reserved.release();
  auto a = start_http_backend("a", Address::loopback(AF_INET));
  auto b = start_http_backend("b", b_address);
  const auto a_line = a->wait_for_line("listening on ", 0ms);
  const Address a_address = Address::parse(a_line->substr(a_line->rfind(' ') + 1));

  ConfigSpec spec{.workers = 2, .listeners = {ListenerSpec{}}, .admin = true};
  ServiceSpec service{.retries = 0,  // a client sent to b while it is down would fail
                      .backends = {{.name = "a", .address = a_address, .node = "n-a"},
                                   {.name = "b", .address = b_address, .node = "n-b"}}};
  service.health_check = HealthCheckSpec{.interval = "100ms", .timeout = "100ms", .rise = 2, .fall = 2};
  spec.services = {service};
  DaemonProcess daemon(spec.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // `count` requests; how many each backend answered ("backend=a"), and how many failed ("failed").
  auto spread = [&](int count) {
    std::map<std::string, int> by_backend;
    for (int i = 0; i < count; ++i) {
      try {
        const HttpResponse response = http_get(proxy, "/", scaled(Millis(2s)));
        ++by_backend[response.status == 200 ? response.body.substr(0, response.body.find(' ')) : "failed"];
      } catch (const std::exception&) {
        ++by_backend["failed"];
      }
    }
    return by_backend;
  };
  auto before = spread(40);
  CHECK(before["backend=a"] > 0);
  CHECK(before["backend=b"] > 0);
  CHECK(before["backend=a"] + before["backend=b"] == 40);

  b->kill();
  CHECK(b->wait_exit(scaled(Millis(5s))).has_value());
  double seen = 0;
  // One monitor for the process: one transition, logged once (counted at the end, once the
  // comeback has taken longer than a second worker's checks would have needed to fall too).
  CHECK_MESSAGE(wait_metric(admin, series("sluice_backend_state_changes_total", "b"), 1, scaled(Millis(5s)), &seen),
                "state changes of b: " << seen);
  CHECK(wait_line_count(daemon, "backend_state service=web backend=b node=n-b state=down", 1, scaled(Millis(2s))));
  std::string text = scrape(admin);
  CHECK(metric(text, series("sluice_backend_up", "b")) == 0);
  CHECK(metric(text, series("sluice_backend_up", "a")) == 1);
  const double b_total = metric(text, series("sluice_backend_connections_total", "b"));
  const double worker1 = metric(text, kWorker1), worker2 = metric(text, kWorker2);

  // Neither worker sends a client to b: every one is a's, none fails.
  auto during = spread(40);
  CHECK(during["backend=a"] == 40);
  text = scrape(admin);
  CHECK(metric(text, kWorker1) > worker1);  // both workers took some of the 40
  CHECK(metric(text, kWorker2) > worker2);
  CHECK(metric(text, series("sluice_backend_connections_total", "b")) == b_total);
  CHECK(metric(text, series("sluice_backend_connect_failures_total", "b")) == 0);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="web",reason="no_backend"})") == 0);

  b = start_http_backend("b", b_address);
  CHECK(wait_line_count(daemon, "backend_state service=web backend=b node=n-b state=up", 1, scaled(Millis(5s))));
  // This scrape is answered by each worker after the monitor's "up" (a task queued before it).
  text = scrape(admin);
  CHECK(metric(text, series("sluice_backend_up", "b")) == 1);
  const double w1_before = metric(text, kWorker1), w2_before = metric(text, kWorker2);
  auto after = spread(40);
  CHECK(after["backend=a"] + after["backend=b"] == 40);
  // Both workers send to b again: each round-robins over a and b, so b gets half of each one's
  // clients give or take one (19 to 21), where a worker that had missed the "up" would give it none.
  text = scrape(admin);
  const double w1 = metric(text, kWorker1) - w1_before, w2 = metric(text, kWorker2) - w2_before;
  INFO("clients on worker 1: " << w1 << ", on worker 2: " << w2 << ", to b: " << after["backend=b"]);
  CHECK(w1 + w2 == 40);
  if (w1 >= 4 && w2 >= 4) {  // else the kernel's spread says nothing here (about 1 run in 10^7)
    CHECK(after["backend=b"] >= 19);
    CHECK(after["backend=b"] <= 21);
  }
  CHECK(metric(text, series("sluice_backend_state_changes_total", "b")) == 2);  // down, up: once each
  CHECK(daemon.count_lines("backend_state service=web backend=b node=n-b state=down") == 1);
  CHECK(daemon.count_lines("backend_state service=web backend=b node=n-b state=up") == 1);
}

TEST_CASE("workers: backend slots and the shared queue are each worker's own, /metrics sums them") {
  LineHoldServer hold;
  ConfigSpec spec{.workers = 2, .listeners = {ListenerSpec{}}, .admin = true};
  spec.services = {ServiceSpec{.retries = 0,
                               .backends = {{.name = "hold", .address = hold.address(), .node = "n-hold",
                                             .max_connections = 1}},
                               .queue = QueueSpec{.mode = "shared", .max_length = 1, .timeout = "30s"}}};
  DaemonProcess daemon(spec.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string active = series("sluice_backend_connections_active", "hold");
  const std::string queued = R"(sluice_service_queue_length{service="web"})";
  const std::string full = R"(sluice_listener_connections_rejected_total{listener="web",reason="queue_full"})";

  constexpr int kClients = 16;
  std::vector<Client> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Client::connect(proxy));
    try {
      clients.back().send_all("client-" + std::to_string(i) + "\n");
    } catch (const std::exception&) {
      // turned away already (queue full)
    }
  }
  std::string text;
  const bool settled = wait_scrape(
                           admin,
                           [&](const std::string& t) {
                             return find_metric(t, kAccepted) == kClients &&
                                    find_metric(t, active).value_or(0) + find_metric(t, queued).value_or(0) +
                                            find_metric(t, full).value_or(0) ==
                                        kClients;
                           },
                           scaled(Millis(5s)), &text)
                           .has_value();
  REQUIRE_MESSAGE(settled, "accepted " << find_metric(text, kAccepted).value_or(-1) << ", active "
                                       << find_metric(text, active).value_or(-1) << ", queued "
                                       << find_metric(text, queued).value_or(-1) << ", queue_full "
                                       << find_metric(text, full).value_or(-1));
  const int w1 = static_cast<int>(metric(text, kWorker1)), w2 = static_cast<int>(metric(text, kWorker2));
  MESSAGE("clients on worker 1: " << w1 << ", on worker 2: " << w2);
  REQUIRE(w1 + w2 == kClients);
  REQUIRE(w1 > 0);  // the kernel put clients on both (else nothing here is about workers)
  REQUIRE(w2 > 0);
  // Per worker: one in the slot, one waiting, the rest turned away.
  const int waiting = (w1 >= 2) + (w2 >= 2);
  const int turned_away = std::max(w1 - 2, 0) + std::max(w2 - 2, 0);
  CHECK(metric(text, active) == 2);  // one slot per worker: 2 at once, not 1
  CHECK(metric(text, series("sluice_backend_max_connections", "hold")) == 2);
  CHECK(metric(text, queued) == waiting);
  CHECK(metric(text, full) == turned_away);
  REQUIRE(hold.wait_arrivals(2, scaled(Millis(2s))));

  // The two in the slots leave: each worker's waiting client takes its own worker's slot.
  auto finish = [&](const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
      Client& client = clients.at(std::stoul(line.substr(line.find('-') + 1)));
      CHECK(client.read_line(scaled(Millis(2s))) == "served " + line);
      client.close();
    }
  };
  finish(hold.arrivals());
  REQUIRE(hold.wait_arrivals(static_cast<std::size_t>(2 + waiting), scaled(Millis(2s))));
  CHECK(wait_metric(admin, queued, 0, scaled(Millis(2s))));
  CHECK(metric(scrape(admin), active) == waiting);
  const auto arrivals = hold.arrivals();
  CHECK(arrivals.size() == static_cast<std::size_t>(2 + waiting));
  finish(std::vector<std::string>(arrivals.begin() + 2, arrivals.end()));
  CHECK(wait_metric(admin, active, 0, scaled(Millis(2s))));

  text = scrape(admin);
  CHECK(metric(text, series("sluice_backend_connections_total", "hold")) == 2 + waiting);
  CHECK(metric(text, R"(sluice_service_queue_wait_seconds_count{service="web"})") == 2 + waiting);
  CHECK(metric(text, full) == turned_away);
  // The turned-away clients were closed without a byte.
  int closed_empty = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    if (std::find(arrivals.begin(), arrivals.end(), "client-" + std::to_string(i)) != arrivals.end()) continue;
    const ReadResult result = clients[i].read_until_end(scaled(Millis(2s)));
    closed_empty += (result.end == End::eof || result.end == End::reset) && result.data.empty();
  }
  CHECK(closed_empty == turned_away);
}

TEST_CASE("workers: with 4 workers a backend gets one health check per interval from the process") {
  NameServer probed("probed");
  ConfigSpec spec{.workers = 4, .listeners = {ListenerSpec{}}, .admin = true};
  ServiceSpec service{.backends = {{.name = "probed", .address = probed.address(), .node = "n-probed"}}};
  service.health_check = HealthCheckSpec{.interval = "200ms", .timeout = "200ms", .rise = 2, .fall = 2};
  spec.services = {service};
  DaemonProcess daemon(spec.yaml());
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  REQUIRE(daemon.wait_for_line("workers=4", 1s));

  // No client: every connection the backend accepts is a check. From the first one on, 10 more
  // take 10 intervals (2 s; libuv never fires a timer early, and 1.8 s leaves room for the moment
  // the first one is seen), where a check by each of the 4 workers would bring them in 0.5 s.
  auto wait_checks = [&](std::uint64_t count, Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    while (probed.accepted() < count && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return probed.accepted() >= count;
  };
  REQUIRE(wait_checks(1, scaled(Millis(2s))));
  const auto first = Clock::now();
  const std::uint64_t base = probed.accepted();
  REQUIRE(wait_checks(base + 10, scaled(Millis(5s))));
  const auto took = Clock::now() - first;
  INFO("10 checks after the first took " << std::chrono::duration_cast<Millis>(took).count() << " ms; accepted "
                                         << probed.accepted());
  CHECK(took >= 1800ms);
  CHECK(took <= scaled(Millis(3s)));
  const std::string text = scrape(admin);
  CHECK(metric(text, series("sluice_backend_up", "probed")) == 1);
  CHECK(metric(text, series("sluice_backend_state_changes_total", "probed")) == 0);
  CHECK(daemon.count_lines("backend_state") == 0);
}

TEST_CASE("workers: refused client connects on two workers add up to one fall for the whole process") {
  ManualBackend backend;
  ConfigSpec spec{.workers = 2, .listeners = {ListenerSpec{}}, .admin = true};
  ServiceSpec service{.retries = 0,
                      .backends = {{.name = "b", .address = backend.address(), .node = "n-b", .max_connections = 1}},
                      .queue = QueueSpec{.mode = "shared", .max_length = 100, .timeout = "60s"}};
  // Checks so rare that only the first one (at start) runs during the test: what takes b down
  // is client connects alone.
  service.health_check = HealthCheckSpec{.interval = "60s", .timeout = "1s", .rise = 2, .fall = 2};
  spec.services = {service};
  DaemonProcess daemon(spec.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string up = series("sluice_backend_up", "b");
  const std::string failures = series("sluice_backend_connect_failures_total", "b");
  const std::string queued = R"(sluice_service_queue_length{service="web"})";

  // The first check has passed (it connected and closed) before any client comes.
  auto check = backend.accept(scaled(Millis(3s)));
  REQUIRE(check.first);
  REQUIRE(check.second.empty());

  // On each worker: a client holding its one slot at b (`held`, with b's end of it) and a client
  // waiting in its queue (`waiting`). Clients come one at a time; which worker took one is read
  // from sluice_worker_connections_accepted_total. One a worker has no use for leaves again.
  struct PerWorker {
    Client held, waiting;
    Fd held_at_backend;
    bool has_held = false, has_waiting = false;
  };
  PerWorker workers[2];
  double accepted_by[2] = {0, 0};
  int waiting_count = 0;
  for (int i = 0; i < 64 && !(workers[0].has_waiting && workers[1].has_waiting); ++i) {
    Client client = Client::connect(proxy);
    const std::string line = "client-" + std::to_string(i);
    client.send_all(line + "\n");
    std::string text;
    REQUIRE(wait_scrape(admin, [&](const std::string& t) { return find_metric(t, kAccepted) == i + 1; },
                        scaled(Millis(2s)), &text));
    const double now_by[2] = {metric(text, kWorker1), metric(text, kWorker2)};
    const int w = now_by[0] > accepted_by[0] ? 0 : 1;
    REQUIRE(now_by[w] == accepted_by[w] + 1);
    accepted_by[0] = now_by[0];
    accepted_by[1] = now_by[1];
    PerWorker& worker = workers[w];
    if (!worker.has_held) {
      auto accepted = backend.accept_client(scaled(Millis(2s)));
      REQUIRE(accepted.second == line);
      worker.held = std::move(client);
      worker.held_at_backend = std::move(accepted.first);
      worker.has_held = true;
    } else if (!worker.has_waiting) {
      REQUIRE(wait_metric(admin, queued, ++waiting_count, scaled(Millis(2s))));
      worker.waiting = std::move(client);
      worker.has_waiting = true;
    } else {
      REQUIRE(wait_metric(admin, queued, waiting_count + 1, scaled(Millis(2s))));
      client.close_with_reset();  // abandoned: it leaves the queue (an EOF would be a half-close)
      REQUIRE(wait_metric(admin, queued, waiting_count, scaled(Millis(2s))));
    }
  }
  REQUIRE_MESSAGE((workers[0].has_waiting && workers[1].has_waiting),
                  "the kernel gave 64 clients to one worker: accepted " << accepted_by[0] << " and " << accepted_by[1]);

  // b stops listening: from now on every connect to it is refused.
  backend.refuse();
  {
    Client probe;
    REQUIRE(Client::try_connect(backend.address(), scaled(Millis(2s)), probe) == ECONNREFUSED);
  }

  // LoopResources 1's slot frees: its waiting client is sent to b and refused. One failure in a row: b
  // stays up (fall is 2).
  auto free_slot = [&](PerWorker& worker) {
    worker.held.close();
    worker.held_at_backend.reset();
    const ReadResult turned_away = worker.waiting.read_until_end(scaled(Millis(3s)));
    CHECK((turned_away.end == End::eof || turned_away.end == End::reset));
    CHECK(turned_away.data.empty());
  };
  free_slot(workers[0]);
  REQUIRE(wait_metric(admin, failures, 1, scaled(Millis(2s))));
  CHECK(metric(scrape(admin), up) == 1);

  // LoopResources 2's: the second failure in a row, seen by the other worker, takes b down once for the
  // process (each worker alone has seen one).
  free_slot(workers[1]);
  REQUIRE(wait_metric(admin, failures, 2, scaled(Millis(2s))));
  double seen = -1;
  CHECK_MESSAGE(wait_metric(admin, up, 0, scaled(Millis(2s)), &seen), "sluice_backend_up of b: " << seen);
  const std::string text = scrape(admin);
  CHECK(metric(text, series("sluice_backend_state_changes_total", "b")) == 1);
  const std::string down_line =
      "backend_state service=web backend=b node=n-b state=down reason=\"2 failures in a row, the last a client "
      "connect: ECONNREFUSED\"";
  CHECK(daemon.wait_for_line(down_line, scaled(Millis(2s))).has_value());  // the log may trail the metric
  CHECK(daemon.count_lines(down_line) == 1);
  CHECK(daemon.count_lines("backend_state") == 1);
  // /backends (worker 1's copy) shows the process's state.
  const HttpResponse backends = http_get(admin, "/backends");
  CHECK(backends.body.find(R"("state":"down")") != std::string::npos);
  CHECK(backends.body.find(R"("state_changes_total":1,)") != std::string::npos);
}
