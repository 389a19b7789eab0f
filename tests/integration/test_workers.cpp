// `workers: N`: N event loops on one port (SO_REUSEPORT), their metrics summed, and reload and
// drain reaching every one of them.

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

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
