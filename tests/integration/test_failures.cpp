// Backends that refuse or never answer: retries hide them from clients, and the daemon logs
// `connect_failed service=S backend=B address=A error=E` for every failed try.

#include <doctest/doctest.h>

#include <csignal>

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

TEST_CASE("logging: a burst of refused connects writes one line per backend a second, the rest counted and summed up") {
  RefusedPort refused;
  ConfigSpec config{.listeners = {ListenerSpec{}},
                    .services = {{.retries = 0, .backends = {{"refused", refused.address()}}}},
                    .admin = true};
  DaemonProcess daemon(config.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  constexpr int clients = 60;
  std::vector<Client> burst;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i) burst.push_back(Client::connect(proxy));
  for (auto& client : burst) CHECK(client.read_until_end(sluice::test::scaled(5s)).data.empty());
  const auto burst_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string failures = R"(sluice_backend_connect_failures_total{service="web",backend="refused",node=""})";
  REQUIRE(wait_metric(admin, failures, clients, sluice::test::scaled(5s)));

  // One line per second of the burst (and one more for a second boundary inside it), the others
  // suppressed and counted.
  const std::string key = "connect_failed service=web backend=refused ";
  const std::string text = scrape(admin);
  const double suppressed = metric(text, "sluice_log_lines_suppressed_total");
  MESSAGE(clients << " refused connects in " << burst_seconds << " s: " << daemon.count_lines(key)
                  << " lines so far, " << suppressed << " suppressed");
  CHECK(suppressed >= clients - 2 - burst_seconds);
  CHECK(metric(text, "sluice_log_lines_dropped_total") == 0);

  // At exit every line is out (no line lost at SIGTERM), and the suppressed ones are summed up.
  daemon.send_signal(SIGTERM);
  const auto code = daemon.wait_exit(sluice::test::scaled(10s));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  const std::size_t written = daemon.count_lines(key);
  CHECK(written >= 1);
  CHECK(static_cast<double>(written) <= 2 + burst_seconds);
  CHECK(static_cast<double>(written) + suppressed == clients);
  double summed_up = 0;
  for (const std::string& line : daemon.lines(Stream::out)) {
    const auto at = line.find("log_suppressed lines=");
    if (at == std::string::npos) continue;
    CHECK(line.find(R"(key="connect_failed service=web backend=refused")") != std::string::npos);
    summed_up += std::stod(line.substr(at + std::string("log_suppressed lines=").size()));
  }
  CHECK(summed_up == suppressed);
}
