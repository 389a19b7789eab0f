// Real clients and servers through Sluice: redis-benchmark against two redis-servers, pgbench
// against two PostgreSQL clusters. One backend is killed with SIGKILL mid-run: the clients it was
// serving see errors, the clients of the other see none, and new clients are served by the
// survivor. Skipped (with a message) when the programs are not installed.
//
// Which client lands on which backend is made certain by weights: listener `to_a` serves service
// `prefers_a` (a weight 1000, b weight 1: smooth weighted round robin sends the first 500
// connections to a), listener `to_b` the mirror image. Both services hold both backends, so when a
// dies its listener's new clients go to b.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <signal.h>

#include <memory>

#include "harness.hpp"
#include "netns.hpp"  // run_command
#include "processes.hpp"

using namespace sluice::it;

namespace {

std::string active_on(const std::string& service, const std::string& backend) {
  return R"(sluice_backend_connections_active{service=")" + service + R"(",backend=")" + backend + R"(",node=""})";
}
std::string series(const std::string& name, const std::string& service, const std::string& backend) {
  return name + R"({service=")" + service + R"(",backend=")" + backend + R"(",node=""})";
}

/// Two listeners over two services that both hold a and b, each strongly preferring one of them;
/// active health checks every 200 ms take a dead backend out after two failures.
std::string preferring_config(const Address& a, const Address& b) {
  auto service = [&](const std::string& name, std::uint32_t weight_a, std::uint32_t weight_b) {
    ServiceSpec spec{.name = name,
                     .connect_timeout = "1s",
                     .retries = 2,
                     .backends = {{.name = "a", .address = a, .weight = weight_a}, {.name = "b", .address = b, .weight = weight_b}}};
    spec.health_check = HealthCheckSpec{.interval = "200ms", .timeout = "200ms", .rise = 2, .fall = 2};
    return spec;
  };
  return ConfigSpec{.listeners = {{.name = "to_a", .service = "prefers_a"}, {.name = "to_b", .service = "prefers_b"}},
                    .services = {service("prefers_a", 1000, 1), service("prefers_b", 1, 1000)},
                    .admin = true}
      .yaml();
}

/// Polls `value()` until it reaches `target`; false at the deadline.
template <typename F>
bool wait_until_at_least(F value, long long target, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (value() < target) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);  // the polling period
  }
  return true;
}

std::size_t count_in(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

}  // namespace

TEST_CASE("reliability: real clients: redis-benchmark through Sluice, a redis-server killed with SIGKILL fails only its own clients") {
  const auto redis_server = find_executable("redis-server");
  const auto redis_benchmark = find_executable("redis-benchmark");
  if (!redis_server || !redis_benchmark) {
    SLUICE_SKIP("redis-server and redis-benchmark are not installed (Debian: redis-server, redis-tools)");
  }
  RedisServer a(*redis_server);
  RedisServer b(*redis_server);
  DaemonProcess daemon(preferring_config(a.address(), b.address()));
  const auto listeners = daemon.wait_listening(2);
  const Address admin = wait_admin_address(daemon);

  constexpr int clients = 8;
  auto benchmark = [&](const Address& at, const std::string& requests) {
    return std::vector<std::string>{*redis_benchmark, "-h", at.host, "-p", std::to_string(at.port),
                                    "-c", std::to_string(clients), "-n", requests, "-t", "set,get",
                                    "-r", "1000", "-d", "64", "-q"};
  };
  // Two endless runs (SET only: 10^8 requests), one per backend.
  DaemonProcess on_a(Command{benchmark(listeners.at("to_a"), "100000000")});
  DaemonProcess on_b(Command{benchmark(listeners.at("to_b"), "100000000")});
  REQUIRE(wait_metric(admin, active_on("prefers_a", "a"), clients, 10s));
  REQUIRE(wait_metric(admin, active_on("prefers_b", "b"), clients, 10s));
  const std::string placed = scrape(admin);
  CHECK(metric(placed, active_on("prefers_a", "b")) == 0);
  CHECK(metric(placed, active_on("prefers_b", "a")) == 0);
  const long long a_before = a.info_number("total_commands_processed");
  const long long b_before = b.info_number("total_commands_processed");
  REQUIRE(wait_until_at_least([&] { return a.info_number("total_commands_processed"); }, a_before + 2000, 10s));
  REQUIRE(wait_until_at_least([&] { return b.info_number("total_commands_processed"); }, b_before + 2000, 10s));

  a.kill();

  // The killed backend's clients see the failure: redis-benchmark reports it and exits non-zero.
  const auto a_exit = on_a.wait_exit(15s);
  REQUIRE_MESSAGE(a_exit.has_value(), "redis-benchmark on the killed backend still runs 15 s after the kill");
  const std::size_t a_errors = on_a.count_lines("Error");
  // The survivor's clients see nothing: their run goes on, 5000 more commands, no error.
  const long long b_after_kill = b.info_number("total_commands_processed");
  CHECK(wait_until_at_least([&] { return b.info_number("total_commands_processed"); }, b_after_kill + 5000, 10s));
  CHECK(on_b.running());
  on_b.send_signal(SIGTERM);
  on_b.wait_exit(5s);
  const std::size_t b_errors = on_b.count_lines("Error");
  // New clients on the dead backend's listener are served by the survivor: a complete run, exit 0.
  const long long b_before_new = b.info_number("total_commands_processed");
  const CommandResult fresh = run_command(benchmark(listeners.at("to_a"), "20000"), {}, 120s);
  const long long b_after_new = b.info_number("total_commands_processed");

  const std::string text = scrape(admin);
  std::string a_error_line = "(none)";
  for (const auto& line : on_a.lines(Stream::err))
    if (line.find("Error") != std::string::npos) a_error_line = line;
  MESSAGE("redis: the benchmark on the killed backend exited with " << *a_exit << " after " << a_errors
                                                                    << " error line(s), the last: " << a_error_line);
  MESSAGE("redis: the benchmark on the survivor: " << b_errors << " error lines; a new 2 x 20000-request run via "
                                                   << "the dead backend's listener exited " << fresh.exit_code << " with "
                                                   << count_in(fresh.output, "Error") << " errors, "
                                                   << (b_after_new - b_before_new) << " commands on the survivor; "
                                                   << "connect failures on a: "
                                                   << metric(text, series("sluice_backend_connect_failures_total", "prefers_a", "a")));
  CHECK(*a_exit != 0);
  CHECK(a_errors >= 1);
  CHECK(b_errors == 0);
  CHECK(fresh.exit_code == 0);
  CHECK(count_in(fresh.output, "Error") == 0);
  CHECK(b_after_new - b_before_new >= 40000);  // SET and GET, 20000 each, all on b (and a few CONFIG GETs)
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="to_a",reason="no_backend"})") == 0);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="to_b",reason="no_backend"})") == 0);
  CHECK(metric(text, series("sluice_backend_up", "prefers_a", "a")) == 0);
  CHECK(metric(text, series("sluice_backend_up", "prefers_b", "b")) == 1);
}

TEST_CASE("reliability: real clients: pgbench through Sluice, a PostgreSQL backend killed with SIGKILL fails only its own clients") {
  const auto bin = postgres_bin_dir();
  if (!bin || !find_executable("setpriv")) {
    SLUICE_SKIP("PostgreSQL server binaries (/usr/lib/postgresql/N/bin: initdb, postgres, pgbench) or setpriv "
            "are not installed (Debian: postgresql, postgresql-contrib)");
  }
  const std::string pgbench = *bin + "/pgbench";
  const auto setup_start = Clock::now();
  PostgresServer a(*bin);
  PostgresServer b(*bin, a.data_directory());  // a copy of a's fresh cluster: no second initdb
  a.start();
  b.start();
  DaemonProcess daemon(preferring_config(a.address(), b.address()));
  const auto listeners = daemon.wait_listening(2);
  const Address admin = wait_admin_address(daemon);
  auto connection = [&](const Address& at) {
    return std::vector<std::string>{"-h", at.host, "-p", std::to_string(at.port), "-U", "postgres"};
  };
  auto command = [&](std::vector<std::string> head, const Address& at, std::vector<std::string> tail) {
    for (auto& part : connection(at)) head.push_back(part);
    for (auto& part : tail) head.push_back(part);
    head.push_back("postgres");
    return head;
  };
  // pgbench -i through Sluice: each listener initialises its own backend.
  for (const char* listener : {"to_a", "to_b"}) {
    const CommandResult init = run_command(command({pgbench, "-i", "-s", "1", "-q"}, listeners.at(listener), {}), {}, 180s);
    REQUIRE_MESSAGE(init.exit_code == 0, "pgbench -i via " << listener << ": " << init.output);
  }
  MESSAGE("postgres: two clusters and pgbench -i ready in " << elapsed_ms(setup_start) << " ms");

  constexpr int clients = 4;
  // On a: runs until the kill ends it. On b: 10 s, across the kill, to its normal end.
  DaemonProcess on_a(Command{command({pgbench, "-c", std::to_string(clients), "-j", "2", "-T", "120", "-P", "1"},
                                     listeners.at("to_a"), {})});
  DaemonProcess on_b(Command{command({pgbench, "-c", std::to_string(clients), "-j", "2", "-T", "10", "-P", "1"},
                                     listeners.at("to_b"), {})});
  REQUIRE(wait_metric(admin, active_on("prefers_a", "a"), clients, 20s));
  REQUIRE(wait_metric(admin, active_on("prefers_b", "b"), clients, 20s));
  REQUIRE(on_a.wait_for_line("progress: ", 20s));  // both are running transactions
  REQUIRE(on_b.wait_for_line("progress: ", 20s));
  const std::string placed = scrape(admin);
  CHECK(metric(placed, active_on("prefers_a", "b")) == 0);
  CHECK(metric(placed, active_on("prefers_b", "a")) == 0);
  REQUIRE_MESSAGE(on_b.running(), "the survivor's 10 s run ended before the kill: the host is too slow for this test");

  a.kill();

  const auto a_exit = on_a.wait_exit(20s);
  REQUIRE_MESSAGE(a_exit.has_value(), "pgbench on the killed backend still runs 20 s after the kill");
  const std::size_t a_aborted = on_a.count_lines("aborted in command");
  const auto b_exit = on_b.wait_exit(30s);
  REQUIRE_MESSAGE(b_exit.has_value(), "pgbench on the survivor did not finish its 10 s run");
  const std::size_t b_aborted = on_b.count_lines("aborted");
  const std::size_t b_error_lines = on_b.count_lines("error");
  const auto b_summary = on_b.wait_for_line("number of failed transactions", 1s);
  // New clients on the dead backend's listener: served by the survivor.
  const CommandResult fresh =
      run_command(command({pgbench, "-c", std::to_string(clients), "-j", "2", "-t", "50"}, listeners.at("to_a"), {}), {}, 120s);

  const std::string text = scrape(admin);
  MESSAGE("pgbench on the killed backend: exit " << *a_exit << ", " << a_aborted << " of " << clients
                                                 << " clients aborted; on the survivor: exit " << *b_exit << ", "
                                                 << b_aborted << " aborted, " << b_error_lines << " error lines, "
                                                 << b_summary.value_or("(no summary)")
                                                 << "; a new 4 x 50-transaction run via the dead backend's listener: exit "
                                                 << fresh.exit_code);
  CHECK(*a_exit != 0);
  CHECK(a_aborted == clients);
  CHECK(*b_exit == 0);
  CHECK(b_aborted == 0);
  CHECK(b_error_lines == 0);
  CHECK((b_summary.has_value() && b_summary->find("number of failed transactions: 0 ") != std::string::npos));
  CHECK_MESSAGE(fresh.exit_code == 0, fresh.output);
  CHECK(fresh.output.find("number of transactions actually processed: 200/200") != std::string::npos);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="to_a",reason="no_backend"})") == 0);
  CHECK(metric(text, series("sluice_backend_up", "prefers_a", "a")) == 0);
}
