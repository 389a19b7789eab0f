// IPv6, idle timeout, the signals that stop the daemon, a start that cannot bind, and the admin
// server's own limits.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <ctime>
#include <future>
#include <optional>
#include <thread>
#include <vector>

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

// When sluice wrote `line`, in ms, from its "%Y-%m-%dT%H:%M:%S.%e" prefix.
std::optional<long long> logged_ms(const std::string& line) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(line.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<long long>(::timegm(&tm)) * 1000 + ms;
}

// Two echo sessions open, `first` starts the drain (30 s), `second` must close both at once.
void check_second_signal(int first, int second) {
  EchoServer echo;
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "30s",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"echo", echo.address()}}}},
                                  .access_log = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  std::vector<Client> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(Client::connect(proxy));
    clients.back().send_all("hello\n");
    REQUIRE(clients.back().read_line() == "hello");
  }

  daemon.send_signal(first);
  const auto draining = daemon.wait_for_line("signal " + std::to_string(first) + ": draining 2 sessions",
                                             sluice::test::scaled(Millis(2s)));
  REQUIRE(draining);
  for (auto& client : clients) {  // the drain keeps them
    client.send_all("still\n");
    CHECK(client.read_line() == "still");
  }

  const auto start = Clock::now();
  daemon.send_signal(second);
  const auto deadline = start + sluice::test::scaled(Millis(3s));  // for all of them together
  for (auto& client : clients) {
    const ReadResult result =
        client.read_until_end(std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now())));
    INFO("a session ended with " << result.end << " " << elapsed_ms(start) << " ms after the second signal");
    CHECK((result.end == End::eof || result.end == End::reset));
    CHECK(result.data.empty());
  }
  const auto code = daemon.wait_exit(sluice::test::scaled(Millis(3s)));
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after the second signal (drain_timeout 30 s)");
  CHECK(*code == 0);

  // The daemon's own clock: the second signal closed both, and it stopped without the drain timeout.
  const auto closing = daemon.wait_for_line(
      "signal " + std::to_string(second) + " during drain: closing 2 sessions now", 0ms);
  const auto stopped = daemon.wait_for_line([](const std::string& line) { return line.ends_with(" info stopped"); }, 0ms);
  REQUIRE(closing);
  REQUIRE(stopped);
  const auto drain_ms = logged_ms(*draining), closing_ms = logged_ms(*closing), stopped_ms = logged_ms(*stopped);
  REQUIRE((drain_ms && closing_ms && stopped_ms));
  CHECK(*closing_ms >= *drain_ms);
  CHECK(*stopped_ms - *closing_ms < sluice::test::scaled(Millis(1s)).count());
  CHECK(*stopped_ms - *drain_ms < 30000);
  CHECK(daemon.count_lines("drain timeout") == 0);
  CHECK(daemon.count_lines(" end=shutdown") == 2);
}

// A listening socket of the test's own on a loopback port: the daemon cannot bind it.
Fd hold_port() {
  Fd fd = bind_tcp_socket(Address::loopback(AF_INET));
  if (::listen(fd.get(), 1) != 0) throw_errno("listen", errno);
  return fd;
}

// The daemon must exit 1 within 10 s, log `error` at level error, and announce no listener.
void check_failed_start(DaemonProcess& daemon, const std::string& error) {
  const auto code = daemon.wait_exit(sluice::test::scaled(Millis(10s)));
  CHECK_MESSAGE(code == std::optional<int>(1), (code ? "exit code " + std::to_string(*code) : "still running"));
  const auto line = daemon.wait_for_line(error, 0ms);
  CHECK_MESSAGE(line.has_value(), "no line with: " << error);
  if (line) CHECK(line->find(" error ") != std::string::npos);
  CHECK(daemon.count_lines("listening") == 0);  // neither `listening listener=` nor `admin listening`
  CHECK(daemon.count_lines(" info stopped") == 0);
}

// Every byte received for `request`: "" when the server closed without answering.
std::string exchange(Client& client, const std::string& request, Millis timeout) {
  try {
    client.send_all(request);
  } catch (const std::exception&) {
    // closed already: what was received tells
  }
  return client.read_until_end(timeout).data;
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

TEST_CASE("a second SIGTERM during the drain closes open sessions at once and exits 0") {
  check_second_signal(SIGTERM, SIGTERM);
}

TEST_CASE("SIGINT during a SIGTERM drain closes open sessions at once and exits 0") {
  check_second_signal(SIGTERM, SIGINT);
}

TEST_CASE("start: an admin address in use ends the daemon with exit 1 naming it, no listener announced") {
  NameServer good("good");
  const Fd held = hold_port();
  const Address address = local_address(held.get());
  ConfigSpec spec{.listeners = {ListenerSpec{}}, .services = {{.backends = {{"good", good.address()}}}}, .admin = true};
  spec.admin_bind = address.to_string();
  DaemonProcess daemon(spec.yaml());
  check_failed_start(daemon, "admin: cannot listen on " + address.to_string() + ": address already in use");
  CHECK(good.accepted() == 0);
}

TEST_CASE("start: a listener address in use ends the daemon with exit 1 naming it, no listener announced") {
  NameServer good("good");
  const Fd held = hold_port();
  const Address address = local_address(held.get());
  // The first listener binds, the second cannot: the first must not be left serving.
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{.name = "first"},
                                                ListenerSpec{.name = "second", .bind = address.to_string()}},
                                  .services = {{.backends = {{"good", good.address()}}}},
                                  .admin = true}
                           .yaml());
  check_failed_start(daemon,
                     "listener second: cannot listen on " + address.to_string() + ": address already in use");
  CHECK(good.accepted() == 0);
}

TEST_CASE("admin: beyond 64 open connections the next are closed unanswered, the 64 keep being served, /metrics answers again when two leave") {
  NameServer good("good");
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"good", good.address()}}}},
                                  .admin = true}
                           .yaml());
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";

  // 64 silent clients fill the cap (the admin closes them after its 5 s request timeout: all of
  // this runs well within it). Accepts are FIFO, so the next ones are the 65th and 66th.
  std::vector<Client> idle;
  for (int i = 0; i < 64; ++i) idle.push_back(Client::connect(admin));
  for (int extra = 65; extra <= 66; ++extra) {
    Client client = Client::connect(admin);
    const auto start = Clock::now();
    const std::string answer = exchange(client, request, sluice::test::scaled(Millis(2s)));
    INFO("client " << extra << " got " << answer.size() << " bytes after " << elapsed_ms(start) << " ms");
    CHECK(answer.empty());  // a complete request, closed unanswered
  }

  // The 64 admitted ones are untouched: one of them is answered.
  const auto answer = sluice::http::read_whole_message(sluice::http::Kind::response,
                                                       exchange(idle[10], request, sluice::test::scaled(Millis(2s))));
  CHECK((answer && answer->head.status == 200 && answer->body == "ok\n"));

  // Two leave: a normal scrape is served again.
  idle[0].close();
  idle[10].close();
  std::optional<std::string> body;
  const auto deadline = Clock::now() + sluice::test::scaled(Millis(2s));
  while (!body && Clock::now() < deadline) {
    try {
      body = scrape(admin);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(10ms);  // the admin has not seen the closes yet
    }
  }
  REQUIRE_MESSAGE(body.has_value(), "no /metrics answer after two of the 64 left");
  CHECK(body->find("\nsluice_build_info{") != std::string::npos);
}

TEST_CASE("admin: a partial request that stalls, or dribbles, is closed after 5 s while /metrics keeps answering") {
  NameServer good("good");
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"good", good.address()}}}},
                                  .admin = true}
                           .yaml());
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  const auto start = Clock::now();
  Client stalled = Client::connect(admin);
  stalled.send_all("GET /metrics HTTP/1.1\r\nHost: admin\r\n");  // no blank line: never complete
  Client dribbling = Client::connect(admin);
  dribbling.send_all("GET /metrics HTTP/1.1\r\nX-Slow: ");

  // Meanwhile a normal client is served.
  for (int i = 0; i < 3; ++i) {
    const HttpResponse response = http_get(admin, "/metrics");
    CHECK(response.status == 200);
    CHECK(response.body.find("\nsluice_build_info{") != std::string::npos);
  }
  CHECK(http_get(admin, "/healthz").body == "ok\n");

  // One header byte every 200 ms: bytes do not extend the deadline. Ends at the daemon's close.
  const auto bound = start + sluice::test::scaled(Millis(10s));
  long long dribble_closed_ms = -1;
  std::string dribble_received;
  while (Clock::now() < bound) {
    const short revents = poll_until(dribbling.fd(), POLLIN, Clock::now() + 200ms);
    if (revents != 0) {
      const ReadResult rest = dribbling.read_until_end(sluice::test::scaled(Millis(2s)));
      dribble_received = rest.data;
      CHECK((rest.end == End::eof || rest.end == End::reset));
      dribble_closed_ms = elapsed_ms(start);
      break;
    }
    if (::send(dribbling.fd(), "a", 1, MSG_NOSIGNAL) != 1) {
      dribble_closed_ms = elapsed_ms(start);  // reset by the close
      break;
    }
  }
  const ReadResult result = stalled.read_until_end(std::chrono::duration_cast<Millis>(bound - Clock::now()));
  const auto stalled_closed_ms = elapsed_ms(start);
  INFO("stalled: " << result.end << " after " << stalled_closed_ms << " ms, dribbling: closed after "
                   << dribble_closed_ms << " ms");
  CHECK((result.end == End::eof || result.end == End::reset));
  CHECK(result.data.empty());
  CHECK(dribble_received.empty());
  CHECK(stalled_closed_ms >= 4500);
  CHECK(stalled_closed_ms < sluice::test::scaled(Millis(8s)).count());
  CHECK(dribble_closed_ms >= 4500);
  CHECK(dribble_closed_ms < sluice::test::scaled(Millis(8s)).count());

  const HttpResponse after = http_get(admin, "/metrics");
  CHECK(after.status == 200);
}

TEST_CASE("threads: the control plane and the admin thread run SCHED_BATCH, the data workers do not") {
  // A scrape or a reload must not preempt a worker when it wakes up (scripts/bench-scrape.sh).
  NameServer good("good");
  DaemonProcess daemon(ConfigSpec{.workers = 2,
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{"good", good.address()}}}},
                                  .admin = true}
                           .yaml());
  daemon.wait_listening_on("web");
  wait_admin_address(daemon);
  // The policy is field 41 of /proc/PID/task/TID/stat, counted from 1, after "(comm)". The admin
  // thread names itself once it runs (after its policy is set): read until it has.
  std::map<std::string, int> policy_of;
  const std::string tasks = "/proc/" + std::to_string(daemon.pid()) + "/task";
  const auto deadline = Clock::now() + sluice::test::scaled(Millis(5s));
  while (policy_of.count("sluice-admin") == 0 && Clock::now() < deadline) {
    policy_of.clear();
    for (const auto& task : std::filesystem::directory_iterator(tasks)) {
      std::ifstream file(task.path() / "stat");
      const std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
      const auto open = stat.find('(');
      const auto close = stat.rfind(')');
      REQUIRE((open != std::string::npos && close != std::string::npos));
      std::istringstream fields(stat.substr(close + 2));
      std::string field;
      for (int number = 3; number <= 41 && fields >> field; ++number) {}
      const bool main_thread = task.path().filename() == std::to_string(daemon.pid());  // others may share its name
      policy_of[main_thread ? "main" : stat.substr(open + 1, close - open - 1)] = std::stoi(field);
    }
    if (policy_of.count("sluice-admin") == 0) std::this_thread::sleep_for(10ms);
  }
  INFO("threads: " << policy_of.size());
  CHECK(policy_of.at("main") == SCHED_BATCH);  // the control plane
  CHECK(policy_of.at("sluice-admin") == SCHED_BATCH);
  CHECK(policy_of.at("sluice-w1") == SCHED_OTHER);
  CHECK(policy_of.at("sluice-w2") == SCHED_OTHER);
}
