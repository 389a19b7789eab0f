// The c-ares client on a libuv loop, against a real DNS server (dnsmasq, tests/common/dnsmasq.hpp):
// every record of a name, the errors that name the host, the deadline, and cancellation.

#include "sluice/discovery/dns_client.hpp"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "dnsmasq.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "test_support.hpp"

using sluice::DnsAnswer;
using sluice::DnsClient;
using sluice::DnsConfig;
using sluice::DnsLookup;
using sluice::Endpoint;
using sluice::Millis;
using sluice::test::Dnsmasq;
using namespace std::chrono_literals;

namespace {

const std::string kHosts =
    "127.0.0.3 multi.test\n"
    "127.0.0.2 multi.test\n"
    "fd00::2 multi.test\n"
    "127.0.0.2 multi.test\n"  // a repeat: answered once
    "127.0.0.9 one.test\n";

// A loop that runs until a condition holds or a bound passes.
struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // lets closing handles finish
    CHECK(uv_loop_close(&loop) == 0);
  }
  template <class Done>
  bool run_until(Done done, Millis bound) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!done() && std::chrono::steady_clock::now() < until) uv_run(&loop, UV_RUN_ONCE);
    return done();
  }
};

DnsConfig config_for(const std::string& server, Millis timeout = 2000ms) {
  return DnsConfig{.servers = {*sluice::parse_endpoint(server)}, .timeout = timeout};
}

std::vector<std::string> texts(const std::vector<sockaddr_storage>& addresses) {
  std::vector<std::string> out;
  for (const sockaddr_storage& address : addresses) out.push_back(sluice::sockaddr_to_string(sluice::as_sockaddr(&address)));
  return out;
}

// One lookup, run to its answer (or none within `bound`).
std::optional<DnsAnswer> look_up(Loop& loop, DnsClient& dns, const std::string& host, Millis bound = 5s) {
  std::optional<DnsAnswer> answer;
  DnsLookup lookup = dns.lookup(host, 80, [&](DnsAnswer a) { answer = std::move(a); });
  loop.run_until([&] { return answer.has_value(); }, bound);
  return answer;
}

// A UDP socket bound on 127.0.0.1 that never reads: a name server that never answers.
struct SilentServer {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  std::string address;
  SilentServer() {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof in;
    sockaddr* plain = static_cast<sockaddr*>(static_cast<void*>(&in));
    REQUIRE(::bind(fd, plain, sizeof in) == 0);
    REQUIRE(::getsockname(fd, plain, &length) == 0);
    address = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
  }
  ~SilentServer() { ::close(fd); }
};

}  // namespace

TEST_CASE("dns client: every A and AAAA record of a name, once each, in a stable order, with the port") {
  if (const std::string why = Dnsmasq::missing(); !why.empty()) SLUICE_SKIP(why);
  Dnsmasq server(kHosts);
  Loop loop;
  DnsClient dns(&loop.loop, config_for(server.server()));
  const auto answer = look_up(loop, dns, "multi.test");
  REQUIRE(answer.has_value());
  CHECK(answer->error == "");
  CHECK(texts(answer->addresses) == std::vector<std::string>{"127.0.0.2:80", "127.0.0.3:80", "[fd00::2]:80"});

  // The server's order does not matter: the same records read the same way.
  server.set_hosts("fd00::2 multi.test\n127.0.0.2 multi.test\n127.0.0.3 multi.test\n");
  CHECK(texts(look_up(loop, dns, "multi.test")->addresses) ==
        std::vector<std::string>{"127.0.0.2:80", "127.0.0.3:80", "[fd00::2]:80"});
  CHECK(texts(look_up(loop, dns, "one.test").value_or(DnsAnswer{}).addresses).empty());  // removed: NXDOMAIN
}

TEST_CASE("dns client: NXDOMAIN, a refused query and a server that is not there fail naming the host") {
  if (const std::string why = Dnsmasq::missing(); !why.empty()) SLUICE_SKIP(why);
  Dnsmasq server(kHosts);
  Loop loop;
  DnsClient dns(&loop.loop, config_for(server.server()));
  CHECK(look_up(loop, dns, "nx.test")->error == "nx.test: no such name (NXDOMAIN)");
  CHECK(look_up(loop, dns, "elsewhere.example")->error ==
        "elsewhere.example: refused by " + server.server() + " (no DNS server there, or it refused the query)");

  // Nothing listens on the port: the kernel's "port unreachable" ends the lookup before its deadline.
  std::string nobody;
  {
    SilentServer taken;  // a port that is free again once this closes
    nobody = taken.address;
  }
  DnsClient unanswered(&loop.loop, config_for(nobody, 3000ms));
  const auto started = std::chrono::steady_clock::now();
  const auto refused = look_up(loop, unanswered, "multi.test");
  REQUIRE(refused.has_value());
  CHECK(refused->error == "multi.test: refused by " + nobody + " (no DNS server there, or it refused the query)");
  CHECK(std::chrono::steady_clock::now() - started < 2500ms);
}

TEST_CASE("dns client: a server that never answers fails as a timeout within the deadline") {
  Loop loop;
  SilentServer silent;
  const Millis deadline = 400ms;
  DnsClient dns(&loop.loop, config_for(silent.address, deadline));
  const auto started = std::chrono::steady_clock::now();
  const auto answer = look_up(loop, dns, "slow.test", 5s);
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  REQUIRE(answer.has_value());
  CHECK(answer->error == "slow.test: no answer within 400ms from " + silent.address + " (timeout)");
  MESSAGE("a lookup against a silent server failed after " << took.count() << " ms (deadline 400 ms)");
  CHECK(took >= deadline - 5ms);  // libuv's timers have millisecond resolution
  CHECK(took <= sluice::test::scaled(deadline + 300ms));
}

TEST_CASE("dns client: a cancelled or dropped lookup never calls back, also when the client goes first") {
  Loop loop;
  SilentServer silent;
  auto dns = std::make_unique<DnsClient>(&loop.loop, config_for(silent.address, 200ms));
  int called = 0;
  {
    DnsLookup dropped = dns->lookup("a.test", 80, [&](DnsAnswer) { ++called; });
    DnsLookup cancelled = dns->lookup("b.test", 80, [&](DnsAnswer) { ++called; });
    CHECK(cancelled.pending());
    cancelled.cancel();
    CHECK_FALSE(cancelled.pending());
  }  // `dropped` is destroyed here
  DnsLookup kept = dns->lookup("c.test", 80, [&](DnsAnswer) { ++called; });
  // Past the deadline of all three: only the kept one answers (a timeout).
  CHECK(loop.run_until([&] { return called > 0; }, 3s));
  loop.run_until([] { return false; }, 300ms);
  CHECK(called == 1);

  // A lookup in flight when the client is destroyed: no callback, and no handle left open (the
  // loop closes in ~Loop).
  DnsLookup orphan = dns->lookup("d.test", 80, [&](DnsAnswer) { ++called; });
  dns.reset();
  loop.run_until([] { return false; }, 300ms);
  CHECK(called == 1);
  CHECK_FALSE(orphan.pending());
}
