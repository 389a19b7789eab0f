// Balancing policies, asserted exactly: backends answer with their own name.

#include <doctest/doctest.h>

#include <map>
#include <memory>

#include "harness.hpp"

using namespace sluice::it;

TEST_CASE("round robin splits 400 sequential connections over 4 backends 100 each") {
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  std::vector<std::unique_ptr<NameServer>> servers;
  ServiceSpec service{.policy = "round_robin"};
  for (const auto& name : names) {
    servers.push_back(std::make_unique<NameServer>(name));
    service.backends.push_back({name, servers.back()->address()});
  }
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  std::vector<std::string> order;
  for (int i = 0; i < 400; ++i) {
    Client client = Client::connect(proxy);
    const ReadResult result = client.read_until_end(2s);
    INFO("connection " << i << " received \"" << result.data << "\"");
    REQUIRE(result.end == End::eof);
    REQUIRE(result.data.size() >= 2);
    REQUIRE(result.data.back() == '\n');
    order.push_back(result.data.substr(0, result.data.size() - 1));
  }

  std::map<std::string, int> received;
  for (const auto& name : order) ++received[name];
  CHECK(received.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO("backend " << names[i]);
    CHECK(received[names[i]] == 100);
    CHECK(servers[i]->accepted() == 100);
  }
  // Equal weights cycle in config order: each connection goes to the successor of the previous one.
  int out_of_cycle = 0;
  for (std::size_t i = 1; i < order.size(); ++i) {
    const auto previous = std::find(names.begin(), names.end(), order[i - 1]) - names.begin();
    out_of_cycle += order[i] != names[static_cast<std::size_t>(previous + 1) % names.size()];
  }
  CHECK(out_of_cycle == 0);
}

TEST_CASE("least connections sends new connections to the backend with the fewest active") {
  // Two HoldServers, a and b: each writes its name, then keeps the connection open.
  // 1. Ten connections, opened one after the other; each reads its backend's name before the next
  //    opens, so the daemon has counted it active. After every even step both backends hold the
  //    same number, and the tie winner of an odd step has one more at the next step, which must go
  //    to the other: 5/5 whatever the tie rule.
  // 2. a releases its five (shuts down its write side). Each client reads EOF and closes; the
  //    daemon then has both directions done and closes (or shuts down) its side towards a, which a
  //    sees as EOF. Once a has seen all five, the daemon has closed those backend connections, and
  //    its single loop finishes that close before it accepts anything new: a has 0 active, b 5.
  // 3. The next five connections must all go to a (it holds 0..4, fewer than b's 5).
  HoldServer a("a");
  HoldServer b("b");
  ServiceSpec service{.policy = "least_connections",
                      .retries = 0,
                      .backends = {{"a", a.address()}, {"b", b.address()}}};
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  std::vector<Client> on_a;
  std::vector<Client> on_b;
  for (int i = 0; i < 10; ++i) {
    Client client = Client::connect(proxy);
    const std::string name = client.read_line();
    INFO("connection " << i << " landed on \"" << name << "\"");
    REQUIRE((name == "a" || name == "b"));
    (name == "a" ? on_a : on_b).push_back(std::move(client));
  }
  CHECK(on_a.size() == 5);
  CHECK(on_b.size() == 5);
  CHECK(a.open() == on_a.size());
  CHECK(b.open() == on_b.size());

  a.release_all();
  for (auto& client : on_a) {
    const ReadResult result = client.read_until_end(2s);
    CHECK(result.end == End::eof);
    CHECK(result.data.empty());
    client.close();
  }
  REQUIRE_MESSAGE(a.wait_open(0, 2s), "a still holds " << a.open() << " connections");
  CHECK(b.open() == 5);

  std::vector<Client> later;
  int later_on_a = 0;
  for (int i = 0; i < 5; ++i) {
    Client client = Client::connect(proxy);
    later_on_a += client.read_line() == "a";
    later.push_back(std::move(client));
  }
  CHECK(later_on_a == 5);
  CHECK(a.accepted() == on_a.size() + 5);
  CHECK(b.accepted() == on_b.size());
}
