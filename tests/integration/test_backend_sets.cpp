// Backend sets (issue 19, "Discovery"): every A record of a name served by the test's own dnsmasq
// is one backend, on loopback addresses 127.0.0.x sharing one port. The name goes from 3 to 5 to
// 2 records; the daemon's backends follow within resolve_interval + rise x interval; sessions on
// removed backends finish with every byte; with a shared queue and one-slot backends no client is
// refused while the set shrinks; mode http spreads requests over the new members.

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <future>
#include <map>
#include <memory>

#include "dnsmasq.hpp"
#include "harness.hpp"
#include "test_support.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;
using sluice::test::Dnsmasq;

namespace {

constexpr Millis kResolveInterval = 200ms;
constexpr Millis kCheckInterval = 100ms;
constexpr int kRise = 2;
const Millis kTolerance = sluice::test::scaled(500ms);  // the VM's and the sanitizers' slack

std::string host(int i) { return "127.0.0." + std::to_string(i); }

/// The hosts-file lines giving pool.sluice.test the addresses 127.0.0.<first..last>.
std::string records(int first, int last) {
  std::string lines;
  for (int i = first; i <= last; ++i) lines += host(i) + " pool.sluice.test\n";
  return lines;
}

/// A TCP port free a moment ago on 127.0.0.2 .. 127.0.0.<last> (the name's addresses share it).
std::uint16_t free_port_on(int last) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::vector<Fd> probes;
    std::uint16_t port = 0;
    bool all = true;
    for (int i = 2; i <= last && all; ++i) {
      Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_storage storage;
      socklen_t length = Address{host(i), port}.to_sockaddr(storage);
      sockaddr* plain = static_cast<sockaddr*>(static_cast<void*>(&storage));
      all = ::bind(probe.get(), plain, length) == 0 && ::getsockname(probe.get(), plain, &length) == 0;
      if (all && port == 0) port = ntohs(static_cast<sockaddr_in*>(static_cast<void*>(&storage))->sin_port);
      probes.push_back(std::move(probe));
    }
    if (all) return port;
  }
  throw std::runtime_error("no TCP port free on 127.0.0.2 .. 127.0.0." + std::to_string(last));
}

std::string config(std::uint16_t port, const Dnsmasq& dns, const std::string& mode) {
  return "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    service: web\n" +
         (mode.empty() ? std::string() : "    mode: " + mode + "\n") +
         "services:\n  - name: web\n    resolve_interval: " + std::to_string(kResolveInterval.count()) + "ms\n" +
         "    queue: {mode: shared, max_length: 100, timeout: 60s}\n"
         "    health_check: {interval: " + std::to_string(kCheckInterval.count()) + "ms, timeout: 100ms, rise: " +
         std::to_string(kRise) + ", fall: 3}\n"
         "    backend_sets:\n      - {name: pool, address: \"pool.sluice.test:" + std::to_string(port) +
         "\", max_backends: 8" + (mode.empty() ? ", max_connections: 1" : "") + "}\n" +
         "admin:\n  bind: 127.0.0.1:0\ndrain_timeout: 10s\ndns:\n  servers: [\"" + dns.server() +
         "\"]\n  timeout: 1s\n";
}

std::string member_series(const std::string& metric, int i, std::uint16_t port) {
  return metric + R"({service="web",backend=")" + host(i) + ":" + std::to_string(port) + R"(",node=""})";
}
const std::string kSetSize = R"(sluice_backend_set_size{service="web",set="pool"})";

/// Every member 127.0.0.<first..last> up, and exactly those: the set's size and each one's up gauge.
bool set_is(const std::string& text, int first, int last, std::uint16_t port) {
  if (find_metric(text, kSetSize) != last - first + 1) return false;
  for (int i = 2; i <= 8; ++i) {
    const auto up = find_metric(text, member_series("sluice_backend_up", i, port));
    if ((i >= first && i <= last) != (up == 1.0)) return false;
  }
  return true;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// Milliseconds until the set is 127.0.0.<first..last> (all up) in /metrics, or -1 past `bound`.
long long ms_until_set(const Address& admin, int first, int last, std::uint16_t port, Millis bound) {
  const auto since = Clock::now();
  std::string last_scrape;
  if (!wait_scrape(admin, [&](const std::string& text) { return set_is(text, first, last, port); }, bound,
                   &last_scrape)) {
    MESSAGE("last scrape:\n" << last_scrape);
    return -1;
  }
  return elapsed_ms(since);
}

}  // namespace

TEST_CASE("backend sets: 3, 5, then 2 records, long transfers finish, queued clients move, none refused") {
  if (const std::string why = Dnsmasq::missing(); !why.empty()) SLUICE_SKIP(why);
  const std::uint16_t port = free_port_on(6);
  std::map<int, std::unique_ptr<EchoServer>> echo;
  for (int i = 2; i <= 6; ++i) echo[i] = std::make_unique<EchoServer>(Address{host(i), port});
  Dnsmasq dns(records(2, 4));
  DaemonProcess daemon(config(port, dns, ""));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const Millis follow_bound = kResolveInterval + kRise * kCheckInterval + kTolerance;

  // The first answer's three members are up at once.
  REQUIRE(ms_until_set(admin, 2, 4, port, 5s) >= 0);

  // Five records: the two new members join down and come up after `rise` checks.
  dns.set_hosts(records(2, 6));
  const long long grew_ms = ms_until_set(admin, 2, 6, port, follow_bound + 2s);
  REQUIRE(grew_ms >= 0);
  MESSAGE("3 -> 5 records: both new members up after " << grew_ms << " ms (bound " << follow_bound.count() << " ms)");
  CHECK(grew_ms <= follow_bound.count());
  CHECK(daemon.count_lines("backend_joined service=web set=pool backend=" + host(5) + ":" + std::to_string(port) +
                           " state=down") == 1);

  // A long transfer on each of the five one-slot members (round robin over free slots), half sent and echoed.
  constexpr std::size_t kHalf = 512 * 1024;
  std::vector<Client> transfers;
  std::vector<std::string> sent;
  for (int i = 0; i < 5; ++i) {
    sent.push_back(pattern(2 * kHalf, static_cast<std::uint64_t>(100 + i)));
    transfers.push_back(Client::connect(proxy));
    transfers.back().send_all(std::string_view(sent.back()).substr(0, kHalf));
  }
  std::vector<std::string> received(5);
  for (int i = 0; i < 5; ++i) received[i] = transfers[i].read_exact(kHalf, 5s);
  for (int i = 2; i <= 6; ++i) {
    CHECK(metric(scrape(admin), member_series("sluice_backend_connections_active", i, port)) == 1);
  }
  // Three more clients wait in the shared queue: every slot is taken.
  std::vector<std::future<ReadResult>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(std::async(std::launch::async, [&proxy, i] {
      Client client = Client::connect(proxy);
      client.send_all("queued-" + std::to_string(i));
      client.shutdown_write();
      return client.read_until_end(60s);
    }));
  }
  REQUIRE(wait_metric(admin, R"(sluice_service_queue_length{service="web"})", 3, 5s));

  // Two records: three members drain (their sessions go on), the set is two within a resolve interval.
  dns.set_hosts(records(2, 3));
  const long long shrank_ms = ms_until_set(admin, 2, 3, port, kResolveInterval + kTolerance + 2s);
  REQUIRE(shrank_ms >= 0);
  MESSAGE("5 -> 2 records: the set is two after " << shrank_ms << " ms (bound "
                                                   << (kResolveInterval + kTolerance).count() << " ms)");
  CHECK(shrank_ms <= (kResolveInterval + kTolerance).count());
  const std::string draining = http_get(admin, "/backends").body;
  CHECK(count(draining, R"("state":"draining")") == 3);
  CHECK(count(draining, R"("set":"pool")") == 5);
  std::string text = scrape(admin);
  for (int i = 4; i <= 6; ++i) {
    CHECK(metric(text, member_series("sluice_backend_connections_active", i, port)) == 1);
  }
  CHECK(metric(text, R"(sluice_service_queue_length{service="web"})") == 3);

  // Every long transfer finishes with every byte, both ways; the queued clients are then served by
  // the two remaining members only (a draining member's freed slot goes to no one).
  for (int i = 0; i < 5; ++i) {
    transfers[i].send_all(std::string_view(sent[i]).substr(kHalf));
    transfers[i].shutdown_write();
  }
  for (int i = 0; i < 5; ++i) {
    const ReadResult rest = transfers[i].read_until_end(10s);
    CHECK(rest.end == End::eof);
    received[i] += rest.data;
    CHECK(sha256_hex(received[i]) == sha256_hex(sent[i]));
  }
  for (int i = 0; i < 3; ++i) {
    const ReadResult answer = queued[i].get();
    CHECK(answer.end == End::eof);
    CHECK(answer.data == "queued-" + std::to_string(i));
  }
  // The drained members are removed: gone from /backends and /metrics.
  REQUIRE(wait_scrape(admin, [&](const std::string& t) {
            return !find_metric(t, member_series("sluice_backend_connections_active", 4, port)) &&
                   !find_metric(t, member_series("sluice_backend_connections_active", 6, port));
          }, 5s));
  const std::string after = http_get(admin, "/backends").body;
  CHECK(count(after, R"("set":"pool")") == 2);
  CHECK(count(after, R"("state":"draining")") == 0);
  text = scrape(admin);
  for (int i = 4; i <= 6; ++i) CHECK_FALSE(find_metric(text, member_series("sluice_backend_up", i, port)));
  CHECK(metric(text, member_series("sluice_backend_connections_total", 2, port)) +
            metric(text, member_series("sluice_backend_connections_total", 3, port)) ==
        5);
  for (const char* reason : {"max_connections", "not_allowed", "no_backend", "queue_full", "queue_timeout",
                             "abandoned", "accept_error", "bad_proxy_header"}) {
    const auto refused = find_metric(
        text, std::string(R"(sluice_listener_connections_rejected_total{listener="web",reason=")") + reason + "\"}");
    CHECK(refused.value_or(0) == 0);
  }
  CHECK(daemon.count_lines("backend_removed service=web set=pool") == 3);

  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(sluice::test::scaled(10s)) == 0);
}

TEST_CASE("backend sets: mode http spreads requests over new members and stops using removed ones") {
  if (const std::string why = Dnsmasq::missing(); !why.empty()) SLUICE_SKIP(why);
  const std::uint16_t port = free_port_on(4);
  std::map<int, std::unique_ptr<DaemonProcess>> backends;
  for (int i = 2; i <= 4; ++i) {
    const std::string listen = host(i) + ":" + std::to_string(port);
    backends[i] = std::make_unique<DaemonProcess>(
        Command{{SLUICE_BACKEND_BINARY, "--listen", listen, "--name", "b" + std::to_string(i)}});
    REQUIRE(backends[i]->wait_for_line("listening on " + listen, 5s));
  }
  Dnsmasq dns(records(2, 2));
  DaemonProcess daemon(config(port, dns, "http"));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  REQUIRE(ms_until_set(admin, 2, 2, port, 5s) >= 0);
  CHECK(http_get(proxy, "/").body.find("backend=b2 ") == 0);

  dns.set_hosts(records(2, 4));
  REQUIRE(ms_until_set(admin, 2, 4, port, kResolveInterval + kRise * kCheckInterval + kTolerance + 2s) >= 0);
  // Round robin over three idle members: 30 requests, ten each.
  std::map<std::string, int> served;
  for (int i = 0; i < 30; ++i) {
    const std::string body = http_get(proxy, "/").body;
    ++served[body.substr(0, body.find(' '))];
  }
  CHECK(served["backend=b2"] == 10);
  CHECK(served["backend=b3"] == 10);
  CHECK(served["backend=b4"] == 10);

  dns.set_hosts(records(3, 3));
  REQUIRE(ms_until_set(admin, 3, 3, port, kResolveInterval + kTolerance + 2s) >= 0);
  REQUIRE(wait_scrape(admin, [&](const std::string& t) {
            return !find_metric(t, member_series("sluice_backend_pool_connections_open", 2, port)) &&
                   !find_metric(t, member_series("sluice_backend_pool_connections_open", 4, port));
          }, 5s));
  for (int i = 0; i < 5; ++i) CHECK(http_get(proxy, "/").body.find("backend=b3 ") == 0);
  CHECK(count(http_get(admin, "/backends").body, R"("set":"pool")") == 1);

  // NXDOMAIN: counted and logged; the member stays and keeps serving (a DNS blink drains nothing).
  dns.set_hosts("");
  const std::string failed = "backend_set_resolve_failed service=web set=pool name=pool.sluice.test:" +
                             std::to_string(port) + " error=\"pool.sluice.test: no such name (NXDOMAIN)\" keeping_members=1";
  REQUIRE(daemon.wait_for_line(failed, kResolveInterval + kTolerance + 2s));
  const std::string text = scrape(admin);
  CHECK(metric(text, R"(sluice_backend_set_resolve_failures_total{service="web",set="pool"})") >= 1);
  CHECK(metric(text, kSetSize) == 1);
  CHECK(metric(text, R"(sluice_backend_set_refused_total{service="web",set="pool"})") == 0);
  CHECK(http_get(proxy, "/").body.find("backend=b3 ") == 0);

  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(sluice::test::scaled(10s)) == 0);
}
