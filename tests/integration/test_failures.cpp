// Backends that refuse or never answer: retries hide them from clients, and the daemon logs
// `connect_failed service=S backend=B address=A error=E` for every failed try.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include "harness.hpp"

using namespace sluice::it;

namespace {
std::string connect_failed(const std::string& service, const std::string& backend, const Address& address,
                           const std::string& error) {
  return "connect_failed service=" + service + " backend=" + backend + " address=" + address.to_string() +
         " error=" + error;
}
}  // namespace

TEST_CASE("a refused backend between two good ones: retries serve every client") {
  NameServer a("a");
  RefusedPort refused;
  NameServer b("b");
  ServiceSpec service{.policy = "round_robin",
                      .retries = 2,
                      .backends = {{"a", a.address()}, {"refused", refused.address()}, {"b", b.address()}}};
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  int served_by_a = 0;
  int served_by_b = 0;
  for (int i = 0; i < 30; ++i) {
    Client client = Client::connect(proxy);
    const ReadResult result = client.read_until_end(2s);
    INFO("connection " << i << " ended with " << result.end << " after \"" << result.data << "\"");
    CHECK(result.end == End::eof);
    CHECK((result.data == "a\n" || result.data == "b\n"));
    served_by_a += result.data == "a\n";
    served_by_b += result.data == "b\n";
  }
  CHECK(served_by_a + served_by_b == 30);
  CHECK(a.accepted() == static_cast<std::uint64_t>(served_by_a));
  CHECK(b.accepted() == static_cast<std::uint64_t>(served_by_b));
  CHECK(served_by_a > 0);
  CHECK(served_by_b > 0);
  const std::string expected = connect_failed("web", "refused", refused.address(), "ECONNREFUSED");
  CHECK_MESSAGE(daemon.wait_for_line(expected, 2s).has_value(), "no line containing: " << expected);
  CHECK(daemon.count_lines("connect_failed service=web backend=a ") == 0);
  CHECK(daemon.count_lines("connect_failed service=web backend=b ") == 0);
}

TEST_CASE("a backend that never answers the SYN times out after connect_timeout and the next one serves") {
  Blackhole blackhole;
  REQUIRE_MESSAGE(blackhole.verify(300ms),
                  "a connect to a listener with a full accept queue did not time out: this host cannot "
                  "simulate an unanswered SYN");
  NameServer good("good");
  ServiceSpec service{.connect_timeout = "200ms",
                      .retries = 1,
                      .backends = {{"blackhole", blackhole.address()}, {"good", good.address()}}};
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  const auto start = Clock::now();
  Client client = Client::connect(proxy);
  const ReadResult result = client.read_until_end(3s);
  const auto served_ms = elapsed_ms(start);
  CHECK(result.end == End::eof);
  CHECK(result.data == "good\n");
  CHECK(served_ms >= 180);  // the first try (round robin starts with the first backend) timed out
  CHECK(served_ms < sluice::test::scaled(2000ms).count());
  CHECK(good.accepted() == 1);
  const std::string expected = connect_failed("web", "blackhole", blackhole.address(), "timeout");
  CHECK_MESSAGE(daemon.wait_for_line(expected, 2s).has_value(), "no line containing: " << expected);
  CHECK(daemon.count_lines("connect_failed service=web backend=good ") == 0);
}

TEST_CASE("retries 0 and only a refused backend: the client is closed and the daemon keeps serving") {
  RefusedPort refused;
  NameServer good("good");
  ConfigSpec config{
      .listeners = {{.name = "broken", .service = "broken"}, {.name = "web", .service = "web"}},
      .services = {{.name = "broken", .retries = 0, .backends = {{"refused", refused.address()}}},
                   {.name = "web", .backends = {{"good", good.address()}}}}};
  DaemonProcess daemon(config.yaml());
  const auto listeners = daemon.wait_listening(2);
  REQUIRE(listeners.count("broken") == 1);
  REQUIRE(listeners.count("web") == 1);

  for (int i = 0; i < 2; ++i) {
    const auto start = Clock::now();
    Client client = Client::connect(listeners.at("broken"));
    const ReadResult result = client.read_until_end(2s);
    INFO("attempt " << i << " ended with " << result.end << " after " << elapsed_ms(start) << " ms");
    CHECK((result.end == End::eof || result.end == End::reset));
    CHECK(result.data.empty());
  }
  CHECK(daemon.running());

  Client client = Client::connect(listeners.at("web"));
  const ReadResult result = client.read_until_end(2s);
  CHECK(result.end == End::eof);
  CHECK(result.data == "good\n");
  const std::string expected = connect_failed("broken", "refused", refused.address(), "ECONNREFUSED");
  CHECK_MESSAGE(daemon.wait_for_line(expected, 2s).has_value(), "no line containing: " << expected);
}
