// Backends named by host name, resolved by the daemon's c-ares client through `dns.servers`
// pointing at the test's own DNS server (dnsmasq, tests/common/dnsmasq.hpp): a changed record
// moves new connections, a name with several records keeps the backend where it is while its
// address is among them, NXDOMAIN keeps the last good address.

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "dnsmasq.hpp"
#include "harness.hpp"
#include "test_support.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;
using sluice::test::Dnsmasq;

namespace {

constexpr Millis kResolveInterval = 300ms;
const Millis kTolerance = sluice::test::scaled(400ms);  // the VM's and the sanitizers' slack

std::string backend_series(const std::string& metric) {
  return metric + R"({service="web",backend="web",node="dns"})";
}

/// "first" from a sluice-backend body "backend=first node=dns\n"; empty when the body is not one.
std::string served_by_http(const Address& proxy) {
  const std::string body = http_get(proxy, "/", 2s).body;
  static constexpr std::string_view key = "backend=";
  const auto at = body.find(key);
  if (at == std::string::npos) return {};
  const auto begin = at + key.size();
  return body.substr(begin, body.find(' ', begin) - begin);
}

/// A TCP port free on both 127.0.0.2 and 127.0.0.3 a moment ago (the name's two addresses share it).
std::uint16_t free_port_on_two_addresses() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage storage;
    socklen_t length = Address{"127.0.0.2", 0}.to_sockaddr(storage);
    sockaddr* plain = static_cast<sockaddr*>(static_cast<void*>(&storage));
    if (::bind(probe.get(), plain, length) != 0 || ::getsockname(probe.get(), plain, &length) != 0) continue;
    const std::uint16_t port = ntohs(static_cast<sockaddr_in*>(static_cast<void*>(&storage))->sin_port);
    Fd other(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    length = Address{"127.0.0.3", port}.to_sockaddr(storage);
    if (::bind(other.get(), plain, length) == 0) return port;
  }
  throw std::runtime_error("no TCP port free on both 127.0.0.2 and 127.0.0.3");
}

std::unique_ptr<DaemonProcess> start_backend(const std::string& name, const std::string& listen) {
  auto backend = std::make_unique<DaemonProcess>(Command{{SLUICE_BACKEND_BINARY, "--listen", listen, "--name", name}},
                                                 Launch{.environment = {"NODE_NAME=dns"}});
  const std::string listening = "sluice-backend " + name + " listening on " + listen;
  if (!backend->wait_for_line(listening, 5s)) throw std::runtime_error("no line: " + listening);
  return backend;
}

/// Polls new connections until one is served by `name`; the milliseconds it took, or -1.
long long ms_until_served_by(const Address& proxy, const std::string& name, Millis bound, std::string& last) {
  const auto since = Clock::now();
  while (elapsed_ms(since) < bound.count()) {
    last = served_by_http(proxy);
    if (last == name) return elapsed_ms(since);
    std::this_thread::sleep_for(10ms);  // the polling period
  }
  return -1;
}

}  // namespace

TEST_CASE("dns: a backend named by host name follows its record on the DNS server of dns.servers") {
  if (const std::string why = Dnsmasq::missing(); !why.empty()) SLUICE_SKIP(why);
  Dnsmasq dns("127.0.0.2 web.sluice.test\n");
  const std::uint16_t port = free_port_on_two_addresses();
  const std::string first_address = "127.0.0.2:" + std::to_string(port);
  const std::string second_address = "127.0.0.3:" + std::to_string(port);
  const auto first = start_backend("first", first_address);
  const auto second = start_backend("second", second_address);

  const ServiceSpec service{.connect_timeout = "500ms",
                            .backends = {{.name = "web", .address = Address{"web.sluice.test", port}, .node = "dns"}},
                            .resolve_interval = std::to_string(kResolveInterval.count()) + "ms",
                            .health_check = HealthCheckSpec{.interval = "200ms", .timeout = "100ms"}};
  const std::string dns_section = "dns:\n  servers: [\"" + dns.server() + "\"]\n  timeout: 1s\n";
  TempConfig file(ConfigSpec{.listeners = {ListenerSpec{}}, .services = {service}, .admin = true}.yaml() + dns_section);
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string name = "name=web.sluice.test:" + std::to_string(port);
  REQUIRE(daemon.wait_for_line("backend_address service=web backend=web " + name + " from=none to=" + first_address, 5s));
  REQUIRE(wait_metric(admin, backend_series("sluice_backend_up"), 1, 2s));
  CHECK(served_by_http(proxy) == "first");

  // The record moves: new connections follow within a resolve interval.
  dns.set_hosts("127.0.0.3 web.sluice.test\n");
  std::string last;
  const long long moved_ms = ms_until_served_by(proxy, "second", kResolveInterval + kTolerance + 2s, last);
  REQUIRE_MESSAGE(moved_ms >= 0, "new connections still go to " << last);
  MESSAGE("record changed on the DNS server -> new connections reach the new address after " << moved_ms
                                                                                           << " ms (bound "
                                                                                           << (kResolveInterval + kTolerance).count() << " ms)");
  CHECK(moved_ms <= (kResolveInterval + kTolerance).count());
  CHECK(daemon.count_lines("backend_address service=web backend=web " + name + " from=" + first_address +
                           " to=" + second_address) == 1);
  std::string text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_state_changes_total")) == 0);
  CHECK(metric(text, backend_series("sluice_backend_resolve_failures_total")) == 0);

  // NXDOMAIN: counted and logged naming the host; the last good address keeps serving.
  dns.set_hosts("");
  REQUIRE(daemon.wait_for_line("backend_resolve_failed service=web backend=web " + name +
                                   " error=\"web.sluice.test: no such name (NXDOMAIN)\" keeping=" + second_address,
                               kResolveInterval + kTolerance + 2s));
  CHECK(metric(scrape(admin), backend_series("sluice_backend_resolve_failures_total")) >= 1);
  CHECK(served_by_http(proxy) == "second");

  // Two records, the current address among them: the backend stays on it, although the other
  // one comes first. The recovery line marks the answer; a move would be logged with it.
  dns.set_hosts("127.0.0.2 web.sluice.test\n127.0.0.3 web.sluice.test\n");
  REQUIRE(daemon.wait_for_line("backend_resolve_recovered service=web backend=web " + name,
                               kResolveInterval + kTolerance + 2s));
  CHECK(daemon.count_lines("backend_address service=web backend=web") == 2);
  for (int i = 0; i < 3; ++i) CHECK(served_by_http(proxy) == "second");

  // Its address leaves the answer: it takes the remaining one.
  dns.set_hosts("127.0.0.2 web.sluice.test\n");
  CHECK(ms_until_served_by(proxy, "first", kResolveInterval + kTolerance + 2s, last) >= 0);
  CHECK(daemon.count_lines("backend_address service=web backend=web " + name + " from=" + second_address +
                           " to=" + first_address) == 1);
  text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_up")) == 1);
  CHECK(metric(text, backend_series("sluice_backend_state_changes_total")) == 0);

  // dns.* is read at start only: a reload that changes it says so and keeps the running servers.
  file.write(ConfigSpec{.listeners = {ListenerSpec{}}, .services = {service}, .admin = true}.yaml() +
             "dns:\n  servers: [\"127.0.0.1:1\"]\n");
  daemon.send_signal(SIGHUP);
  CHECK(daemon.wait_for_line("config: dns changes take effect at the next start", 5s));
  REQUIRE(daemon.wait_for_line("config: reload applied", 5s));
  dns.set_hosts("127.0.0.3 web.sluice.test\n");
  CHECK(ms_until_served_by(proxy, "second", kResolveInterval + kTolerance + 2s, last) >= 0);
}
