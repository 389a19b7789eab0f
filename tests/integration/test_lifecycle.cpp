// IPv6, idle timeout, and the signals that stop the daemon.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cerrno>
#include <csignal>
#include <future>
#include <thread>

#include "harness.hpp"
#include "stream_echo.hpp"

using namespace sluice::it;

namespace {

bool ipv6_loopback_available() {
  try {
    bind_tcp_socket(Address::loopback(AF_INET6));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void check_clean_exit_on(int signal_number) {
  NameServer good("good");
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "10s",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"good", good.address()}}}}}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  {
    Client client = Client::connect(proxy);  // one session that has ended before the signal
    CHECK(client.read_until_end(2s).data == "good\n");
  }
  daemon.send_signal(signal_number);
  // No session is active, so the daemon must not wait for its 10 s drain_timeout.
  const auto code = daemon.wait_exit(3s);
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after signal " << signal_number);
  CHECK(*code == 0);
}

// After SIGTERM: new clients are refused within 2 s. A probe that still gets in before the
// listener is gone is one more session to drain: it is closed at once, ending that session.
void check_refused_soon(const Address& proxy) {
  const auto deadline = Clock::now() + 2s;
  int probe_error = 0;
  while (Clock::now() < deadline) {
    Client probe;
    probe_error = Client::try_connect(proxy, 500ms, probe);
    if (probe_error == ECONNREFUSED) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK_MESSAGE(probe_error == ECONNREFUSED, "new clients still get in 2 s after SIGTERM: " << errno_text(probe_error));
}

}  // namespace

TEST_CASE("IPv6 listener and IPv6 backend serve a client") {
  if (!ipv6_loopback_available()) {
    SLUICE_SKIP("::1 is not available on this host");
  }
  NameServer backend("six", AF_INET6);
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"six", backend.address()}}},
                                             ListenerSpec{.bind = "[::1]:0"}));
  const Address proxy = daemon.wait_listening_on("web");
  CHECK(proxy.host == "::1");
  CHECK(proxy.port != 0);

  Client client = Client::connect(proxy);
  const ReadResult result = client.read_until_end(2s);
  CHECK(result.end == End::eof);
  CHECK(result.data == "six\n");
  CHECK(backend.accepted() == 1);
}

TEST_CASE("idle timeout closes a silent session and spares an active one") {
  EchoServer echo;
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"echo", echo.address()}}},
                                             ListenerSpec{.idle_timeout = "300ms"}));
  const Address proxy = daemon.wait_listening_on("web");

  // Active: one message every 100 ms for 1 s, each echoed back; never idle for 300 ms.
  Client active = Client::connect(proxy);
  const auto start = Clock::now();
  for (int i = 1; i <= 10; ++i) {
    const std::string message = "tick " + std::to_string(i) + "\n";
    active.send_all(message);
    CHECK(active.read_exact(message.size(), 1s) == message);
    std::this_thread::sleep_until(start + i * 100ms);  // the pace of the client, not a wait for the daemon
  }
  active.send_all("still here\n");
  CHECK(active.read_exact(11, 1s) == "still here\n");

  // Silent: closed by the daemon after about 300 ms.
  const auto idle_start = Clock::now();
  Client idle = Client::connect(proxy);
  const ReadResult result = idle.read_until_end(3s);
  const auto closed_ms = elapsed_ms(idle_start);
  INFO("silent session ended with " << result.end << " after " << closed_ms << " ms");
  CHECK((result.end == End::eof || result.end == End::reset));
  CHECK(result.data.empty());
  CHECK(closed_ms >= 270);
  CHECK(closed_ms < sluice::test::scaled(2000ms).count());
}

TEST_CASE("SIGTERM with no active session exits 0 at once") { check_clean_exit_on(SIGTERM); }

TEST_CASE("SIGINT with no active session exits 0 at once") { check_clean_exit_on(SIGINT); }

TEST_CASE("SIGTERM lets an active session finish and refuses new clients before exiting 0") {
  EchoServer echo;
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "10s",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"echo", echo.address()}}}}}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  Client client = Client::connect(proxy);
  client.send_all("before\n");
  CHECK(client.read_exact(7) == "before\n");

  daemon.send_signal(SIGTERM);
  check_refused_soon(proxy);

  CHECK(daemon.running());
  client.send_all("after\n");
  CHECK(client.read_exact(6) == "after\n");
  client.shutdown_write();
  const ReadResult result = client.read_until_end(2s);
  CHECK(result.end == End::eof);
  CHECK(result.data.empty());
  client.close();

  const auto code = daemon.wait_exit(3s);
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after its last session ended");
  CHECK(*code == 0);
}

TEST_CASE("SIGTERM during a 64 MiB echo stream: /healthz says draining, new clients are refused, the stream completes intact, exit 0") {
  const std::uint64_t size = env_or("SLUICE_TEST_STREAM_MIB", 64) << 20;
  EchoServer echo;
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "60s",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"echo", echo.address()}}}},
                                  .admin = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  auto stream = std::async(std::launch::async, [&] { return stream_echo(proxy, size, 7, 10s); });
  // In flight: at least 1 MiB through, so the SIGTERM lands mid-stream.
  REQUIRE(wait_scrape(
      admin,
      [](const std::string& text) {
        return metric(text, R"(sluice_backend_sent_bytes_total{service="web",backend="echo",node=""})") > (1 << 20);
      },
      10s));

  // A second session, quiet until the checks below are done: the stream alone may finish (and the
  // drain with it, ending the process) before /healthz is asked.
  Client quiet = Client::connect(proxy);
  quiet.send_all("hold\n");
  REQUIRE(quiet.read_line() == "hold");

  daemon.send_signal(SIGTERM);
  check_refused_soon(proxy);
  const HttpResponse health = http_get(admin, "/healthz");
  CHECK(health.status == 503);
  CHECK(health.body == "draining\n");
  quiet.send_all("still\n");
  CHECK(quiet.read_line() == "still");
  quiet.close();

  const StreamOutcome outcome = stream.get();
  CHECK_MESSAGE(outcome.failure.empty(), outcome.failure);
  CHECK(outcome.sent == size);
  CHECK(outcome.received == size);
  CHECK(outcome.received_sha == outcome.sent_sha);
  const auto code = daemon.wait_exit(5s);
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 5 s after its last session ended");
  CHECK(*code == 0);
}

TEST_CASE("SIGTERM closes the sessions still open when drain_timeout ends") {
  EchoServer echo;
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "500ms",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"echo", echo.address()}}}}}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  Client client = Client::connect(proxy);
  client.send_all("x");
  CHECK(client.read_exact(1) == "x");

  const auto start = Clock::now();
  daemon.send_signal(SIGTERM);
  const ReadResult result = client.read_until_end(3s);
  const auto closed_ms = elapsed_ms(start);
  INFO("the session ended with " << result.end << " " << closed_ms << " ms after SIGTERM");
  CHECK((result.end == End::eof || result.end == End::reset));
  CHECK(result.data.empty());
  CHECK(closed_ms >= 450);
  CHECK(closed_ms < sluice::test::scaled(2000ms).count());
  const auto code = daemon.wait_exit(3s);
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after SIGTERM and a 500 ms drain_timeout");
  CHECK(*code == 0);
}
