// Backend addresses given as host names: the daemon runs inside a network namespace (`ip netns
// exec`), so its resolver reads the test's /etc/netns/NS/hosts, and the test changes that file. The
// namespace reaches the root namespace through a bridge, so the test connects to the daemon's
// listener and admin server from outside. Needs root (see NetnsSupport); skipped otherwise.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <thread>

#include "harness.hpp"
#include "netns.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;

namespace {

constexpr Millis kResolveInterval = 300ms;
constexpr Millis kInterval = 200ms;
constexpr int kRise = 2;
// What the shared 2-core machine may add to a bound (timers and scrapes scheduled late, the ASan
// daemon several times slower).
const Millis kTolerance = sluice::test::scaled(300ms);  // the VM's and the sanitizers' slack

const HealthCheckSpec kChecks{.interval = "200ms", .timeout = "100ms", .rise = kRise, .fall = 3};
const std::string kLocalhost = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";

std::string backend_series(const std::string& metric, const std::string& backend) {
  return metric + R"({service="web",backend=")" + backend + R"(",node="dns"})";
}

/// "first" from a sluice-backend body "backend=first node=dns\n"; empty when the body is not one.
std::string served_by(std::string_view body) {
  static constexpr std::string_view key = "backend=";
  const auto at = body.find(key);
  if (at == std::string_view::npos) return {};
  const auto begin = at + key.size();
  return std::string(body.substr(begin, body.find(' ', begin) - begin));
}

/// One `GET /` on a kept-alive connection; returns the response body.
std::string keep_alive_get(Client& client) {
  client.send_all("GET / HTTP/1.1\r\nHost: web.sluice.test\r\n\r\n");
  return read_response(client).body;
}

/// The /backends JSON without whitespace, for plain substring checks.
std::string backends_json(const Address& admin) {
  std::string body = http_get(admin, "/backends").body;
  body.erase(std::remove_if(body.begin(), body.end(), [](unsigned char c) { return std::isspace(c); }), body.end());
  return body;
}

/// A sluice-backend in the namespace of `network`'s node "dns".
std::unique_ptr<DaemonProcess> start_backend(const NetnsNetwork& network, const std::string& name,
                                             const std::string& listen) {
  auto backend = std::make_unique<DaemonProcess>(
      Command{{SLUICE_BACKEND_BINARY, "--listen", listen, "--name", name}}, network.launch("dns", {"NODE_NAME=dns"}));
  const std::string listening = "sluice-backend " + name + " listening on " + listen;
  if (!backend->wait_for_line(listening, 5s)) throw std::runtime_error("no line: " + listening);
  return backend;
}

/// The daemon in the node "dns", its listener and admin server on the node's bridge address.
std::unique_ptr<DaemonProcess> start_daemon(const NetnsNetwork& network, const ServiceSpec& service) {
  const std::string host = network.node("dns").address;
  const ConfigSpec config{.listeners = {ListenerSpec{.bind = host + ":0"}},
                          .services = {service},
                          .admin = true,
                          .admin_bind = host + ":0"};
  return std::make_unique<DaemonProcess>(config.yaml(), std::vector<std::string>{}, network.launch("dns"));
}

}  // namespace

TEST_CASE("resolution: a changed address takes new connections within resolve_interval, open ones stay, a lost name keeps it") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  NetnsNetwork network({"dns"}, 1);
  network.write_hosts("dns", kLocalhost + "127.0.0.2 web.sluice.test\n");
  const CommandResult getent = network.run("dns", {"getent", "ahostsv4", "web.sluice.test"}, 5s);
  REQUIRE_MESSAGE(getent.exit_code == 0, "the namespace does not see its hosts file: " << getent.output);
  REQUIRE(getent.output.starts_with("127.0.0.2 "));

  const auto first = start_backend(network, "first", "127.0.0.2:8000");
  const auto second = start_backend(network, "second", "127.0.0.3:8000");
  const ServiceSpec service{.connect_timeout = "500ms",
                            .backends = {{.name = "web", .address = Address{"web.sluice.test", 8000}, .node = "dns"}},
                            .resolve_interval = std::to_string(kResolveInterval.count()) + "ms",
                            .health_check = kChecks};
  const auto daemon = start_daemon(network, service);
  const Address proxy = daemon->wait_listening_on("web");
  const Address admin = wait_admin_address(*daemon);
  REQUIRE(wait_metric(admin, backend_series("sluice_backend_up", "web"), 1, 2s));

  Client held = Client::connect(proxy);
  CHECK(served_by(keep_alive_get(held)) == "first");
  CHECK(served_by(http_get(proxy, "/").body) == "first");

  // The name moves to the second backend.
  network.write_hosts("dns", kLocalhost + "127.0.0.3 web.sluice.test\n");
  const auto changed = Clock::now();
  long long switch_ms = -1;
  std::string last;
  while (elapsed_ms(changed) < (kResolveInterval + kTolerance + 2s).count()) {
    last = served_by(http_get(proxy, "/", 2s).body);
    if (last == "second") {
      switch_ms = elapsed_ms(changed);
      break;
    }
    std::this_thread::sleep_for(10ms);  // the polling period
  }
  REQUIRE_MESSAGE(switch_ms >= 0, "new connections still go to " << last);
  MESSAGE("hosts changed -> new connections reach the new address after " << switch_ms << " ms (bound "
                                                                         << (kResolveInterval + kTolerance).count()
                                                                         << " ms)");
  CHECK(switch_ms <= (kResolveInterval + kTolerance).count());
  for (int i = 0; i < 5; ++i) CHECK(served_by(http_get(proxy, "/").body) == "second");

  // The connection opened before the change still flows, to the first backend.
  for (int i = 0; i < 3; ++i) CHECK(served_by(keep_alive_get(held)) == "first");

  const std::string text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_up", "web")) == 1);
  // A new address is not a failure: the backend stays up throughout.
  CHECK(metric(text, backend_series("sluice_backend_state_changes_total", "web")) == 0);
  // The hosts file is rewritten in place without an empty moment (see NetnsNetwork::write_hosts).
  CHECK(metric(text, backend_series("sluice_backend_resolve_failures_total", "web")) == 0);
  const std::string json = backends_json(admin);
  CHECK_MESSAGE(json.find(R"("resolved":"127.0.0.3:8000")") != std::string::npos, "GET /backends: " << json);

  // The name disappears: the failures are counted, the last good address is kept and serves.
  network.write_hosts("dns", kLocalhost);
  std::string after;
  const bool counted = wait_scrape(
                           admin,
                           [&](const std::string& t) {
                             return find_metric(t, backend_series("sluice_backend_resolve_failures_total", "web"))
                                        .value_or(0) >= 1;
                           },
                           kResolveInterval + kTolerance + 1s, &after)
                           .has_value();
  CHECK_MESSAGE(counted, "no resolve failure counted after the name was removed");
  CHECK(metric(after, backend_series("sluice_backend_up", "web")) == 1);
  CHECK(served_by(http_get(proxy, "/").body) == "second");
  CHECK(served_by(keep_alive_get(held)) == "first");
}

TEST_CASE("resolution: a name that resolves only later starts down, then comes up and serves the queued client") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  NetnsNetwork network({"dns"}, 1);
  // resolv.conf names 127.0.0.1, where nothing answers: a name the hosts file lacks fails at once.
  const auto lookup = Clock::now();
  const CommandResult getent = network.run("dns", {"getent", "ahostsv4", "late.sluice.test"}, 5s);
  const long long lookup_ms = elapsed_ms(lookup);
  REQUIRE_MESSAGE(getent.exit_code == 2, "getent of an unknown name: exit " << getent.exit_code << ": " << getent.output);
  CHECK(lookup_ms < sluice::test::scaled(1500ms).count());

  const auto late = start_backend(network, "late", "127.0.0.2:8000");
  const ServiceSpec service{.connect_timeout = "500ms",
                            .backends = {{.name = "late", .address = Address{"late.sluice.test", 8000}, .node = "dns"}},
                            .queue = QueueSpec{.timeout = "10s"},
                            .resolve_interval = std::to_string(kResolveInterval.count()) + "ms",
                            .health_check = kChecks};
  const auto daemon = start_daemon(network, service);
  const Address proxy = daemon->wait_listening_on("web");
  const Address admin = wait_admin_address(*daemon);

  std::string text;
  const bool failed = wait_scrape(
                          admin,
                          [&](const std::string& t) {
                            return find_metric(t, backend_series("sluice_backend_resolve_failures_total", "late"))
                                       .value_or(0) > 0;
                          },
                          3s, &text)
                          .has_value();
  REQUIRE_MESSAGE(failed, "no resolve failure counted:\n" << text);
  CHECK(metric(text, backend_series("sluice_backend_up", "late")) == 0);
  CHECK(daemon->running());
  const std::string json = backends_json(admin);
  CHECK_MESSAGE(json.find(R"("resolved":null)") != std::string::npos, "GET /backends: " << json);

  // A client arriving while no backend is up waits in the queue.
  const auto queued_at = Clock::now();
  Client waiting = Client::connect(proxy);
  waiting.send_all("GET / HTTP/1.1\r\nHost: late.sluice.test\r\nConnection: close\r\n\r\n");
  REQUIRE(wait_metric(admin, R"(sluice_service_queue_length{service="web"})", 1, 2s));

  // The name appears: resolved at the next resolve_interval, then rise good checks (the first at once).
  const Millis up_bound = kResolveInterval + kRise * kInterval + kTolerance;
  network.write_hosts("dns", kLocalhost + "127.0.0.2 late.sluice.test\n");
  const auto added = Clock::now();
  const bool up = wait_metric(admin, backend_series("sluice_backend_up", "late"), 1, 5s);
  const long long up_ms = elapsed_ms(added);
  REQUIRE_MESSAGE(up, "sluice_backend_up for late still not 1 after 5 s");
  MESSAGE("name added to hosts -> sluice_backend_up{backend=late} 1 after " << up_ms << " ms (bound "
                                                                            << up_bound.count() << " ms)");
  CHECK(up_ms <= up_bound.count());

  // The queued client is served by it, well before the queue timeout.
  const ReadResult reply = waiting.read_until_end(3s);
  const long long waited_ms = elapsed_ms(queued_at);
  CHECK(reply.end == End::eof);
  const auto served = sluice::http::read_whole_message(sluice::http::Kind::response, reply.data);
  CHECK_MESSAGE((served && served->body == "backend=late node=dns\n"), "reply: " << reply.data);
  CHECK(waited_ms < sluice::test::scaled(Millis(10s)).count());
  MESSAGE("the queued client waited " << waited_ms << " ms");
  CHECK(served_by(http_get(proxy, "/").body) == "late");

  text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_state_changes_total", "late")) == 1);  // down -> up
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "late")) == 2);
  CHECK(metric(text, R"(sluice_service_queue_length{service="web"})") == 0);
  const std::string resolved_json = backends_json(admin);
  CHECK_MESSAGE(resolved_json.find(R"("resolved":"127.0.0.2:8000")") != std::string::npos, "GET /backends: " << resolved_json);
}

TEST_CASE("resolution: SIGTERM while a DNS lookup hangs: the daemon still exits within drain_timeout") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  NetnsNetwork network({"dns"}, 1);
  // A name server that never answers: a UDP socket of the test, on the bridge address, never read.
  Fd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(silent);
  sockaddr_storage storage;
  const socklen_t length = Address{network.bridge_address(), 53}.to_sockaddr(storage);
  REQUIRE(::bind(silent.get(), sluice::as_sockaddr(&storage), length) == 0);
  network.write_resolv_conf("dns", "nameserver " + network.bridge_address() + "\noptions timeout:3 attempts:1\n");

  const ServiceSpec service{.backends = {{.name = "slow", .address = Address{"slow.sluice.test", 8000}, .node = "dns"}},
                            .resolve_interval = std::to_string(kResolveInterval.count()) + "ms",
                            .health_check = kChecks};
  const std::string host = network.node("dns").address;
  const Millis drain_timeout = 500ms;
  DaemonProcess daemon(ConfigSpec{.drain_timeout = std::to_string(drain_timeout.count()) + "ms",
                                  .listeners = {ListenerSpec{.bind = host + ":0"}},
                                  .services = {service},
                                  .admin = true,
                                  .admin_bind = host + ":0"}
                           .yaml(),
                       {}, network.launch("dns"));
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  // The first lookup is in flight (it takes 3 s): no answer, no failure yet.
  const std::string text = scrape(admin);
  CHECK(metric(text, backend_series("sluice_backend_up", "slow")) == 0);
  CHECK(metric(text, backend_series("sluice_backend_resolve_failures_total", "slow")) == 0);

  // No session is open: the daemon may exit at once, and must within drain_timeout.
  const auto signalled = Clock::now();
  daemon.send_signal(SIGTERM);
  const auto code = daemon.wait_exit(drain_timeout + 5s);
  const long long exit_ms = elapsed_ms(signalled);
  MESSAGE("SIGTERM with a lookup in flight -> exit after " << exit_ms << " ms (drain_timeout "
                                                            << drain_timeout.count() << " ms, lookup 3000 ms)");
  CHECK(code == std::optional<int>(0));
  CHECK(exit_ms <= (drain_timeout + kTolerance).count());
}
