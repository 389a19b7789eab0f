// mode: http with real processes on both sides (issue 18): a backend killed with SIGKILL in the
// middle of its responses (the clients see their connections closed, never a body that looks
// complete, and the next request goes to the survivor), and curl, wrk and ab with keep-alive
// through Sluice to a Debian nginx, every response counted and its body checked.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <regex>
#include <string>

#include "harness.hpp"
#include "http_backend.hpp"
#include "netns.hpp"  // run_command
#include "processes.hpp"

#ifndef SLUICE_SOURCE_DIR
#error "SLUICE_SOURCE_DIR must name the source tree (tests/integration/http_stall_backend.py)"
#endif

using namespace sluice::it;

namespace {

constexpr std::size_t kMiB = 1 << 20;

// Reads from `client` into `progress` until `body` bytes of the response's body arrived.
void read_body_until(Client& client, ResponseProgress& progress, std::size_t body) {
  while (progress.body_bytes() < body) {
    const std::string bytes = read_available(client, 10s);
    REQUIRE_FALSE(bytes.empty());
    REQUIRE(progress.feed(bytes));
  }
}

// Reads until the connection ends, into `progress`; true when it ended (EOF or reset).
bool read_to_end(Client& client, ResponseProgress& progress) {
  for (;;) {
    bool reset = false;
    const std::string bytes = read_available(client, 5s, &reset);
    if (bytes.empty()) return true;
    if (!progress.feed(bytes)) return false;
  }
}

std::uint16_t port_after(DaemonProcess& process, const std::string& prefix) {
  const auto line = process.wait_for_line(prefix, 10s);
  REQUIRE(line);
  return static_cast<std::uint16_t>(std::stoi(line->substr(line->find(prefix) + prefix.size())));
}

// An nginx on a free loopback port serving `files` (name, content) and /ok ("ok\n"), keep-alive.
struct Nginx {
  TempDir directory;
  Address address;
  std::unique_ptr<DaemonProcess> process;

  Nginx(const std::string& nginx, const std::vector<std::pair<std::string, std::string>>& files) {
    const std::string root = directory.path() + "/files";
    ::mkdir(root.c_str(), 0755);
    ::chmod(directory.path().c_str(), 0755);  // the workers run as nobody
    for (const auto& [name, content] : files) std::ofstream(root + "/" + name, std::ios::binary) << content;
    address = Address{"127.0.0.1", free_port()};
    const std::string conf = directory.path() + "/nginx.conf";
    std::ofstream(conf) << "worker_processes 1;\ndaemon off;\npid " << directory.path() << "/nginx.pid;\n"
                        << "error_log stderr;\nevents { worker_connections 256; }\nhttp {\n  access_log off;\n"
                        << "  keepalive_requests 1000000;\n  server {\n    listen " << address.to_string() << ";\n"
                        << "    root " << root << ";\n    location = /ok { return 200 \"ok\\n\"; }\n  }\n}\n";
    process = std::make_unique<DaemonProcess>(Command{{nginx, "-p", directory.path(), "-c", conf}});
    const auto deadline = Clock::now() + 10s;
    for (Client probe; Client::try_connect(address, 200ms, probe) != 0;) {
      if (Clock::now() >= deadline) throw std::runtime_error("nginx did not listen on " + address.to_string());
      std::this_thread::sleep_for(20ms);  // the polling period
    }
  }
};

const std::string kNginxOk = "sluice_backend_http_responses_total{service=\"web\",backend=\"nginx\",node=\"\",code=\"2xx\"}";

}  // namespace

TEST_CASE("http: a backend killed mid-response closes its clients' connections short of the body's end, and the next request goes to the survivor") {
  DaemonProcess stalling(Command{{"/usr/bin/python3", SLUICE_SOURCE_DIR "/tests/integration/http_stall_backend.py"}});
  const Address doomed{"127.0.0.1", port_after(stalling, "stall-backend listening on 127.0.0.1:")};
  HttpTestBackend survivor;
  // Smooth weighted round robin sends the first requests to the doomed backend.
  ServiceSpec service{.retries = 2,
                      .backends = {{.name = "doomed", .address = doomed, .weight = 1000},
                                   {.name = "survivor", .address = survivor.address(), .weight = 1}}};
  DaemonProcess daemon(
      ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true}.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Both responses begun: each client has the 1 MiB the backend sent before it stalled.
  Client by_length = Client::connect(proxy);
  by_length.send_all("GET /length HTTP/1.1\r\nHost: t\r\n\r\n");
  ResponseProgress length;
  read_body_until(by_length, length, kMiB);
  Client by_chunks = Client::connect(proxy);
  by_chunks.send_all("GET /chunked HTTP/1.1\r\nHost: t\r\n\r\n");
  ResponseProgress chunks;
  read_body_until(by_chunks, chunks, kMiB);
  REQUIRE(stalling.wait_for_line("stalled /chunked", 5s));

  stalling.kill();
  // Closed short of the announced 4 MiB, and the chunked body without its last chunk: neither
  // response looks complete.
  CHECK(read_to_end(by_length, length));
  CHECK(read_to_end(by_chunks, chunks));
  CHECK(length.body_bytes() == kMiB);
  CHECK_FALSE(length.complete());
  CHECK(chunks.body_bytes() == kMiB);
  CHECK_FALSE(chunks.complete());

  // The kernel releases a killed process's sockets after its exit, the listener possibly last: a
  // connect accepted meanwhile would be reset (a 502, rightly: not a reused connection). So the
  // next request is sent once the port refuses.
  const auto deadline = Clock::now() + 5s;
  for (Client probe; Client::try_connect(doomed, 200ms, probe) != ECONNREFUSED;) {
    REQUIRE(Clock::now() < deadline);
    std::this_thread::sleep_for(10ms);  // the polling period
  }
  Client next = Client::connect(proxy);
  next.send_all("GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto response = read_http_response(next, 5s);
  CHECK(response.head.status == 200);
  CHECK(response.body == "ok\n");
  CHECK(survivor.requests() == 1);
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"response_aborted\"}") == 2);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"bad_gateway\"}") == 0);
}

TEST_CASE("http: real clients through Sluice to nginx with keep-alive: curl, wrk and ab, every response 200 with the right body") {
  const auto nginx_path = find_executable("nginx");
  const auto curl = find_executable("curl");
  const auto wrk = find_executable("wrk");
  const auto ab = find_executable("ab");
  if (!nginx_path || !curl || !wrk || !ab) {
    SLUICE_SKIP("nginx, curl, wrk or ab is not installed (Debian: nginx curl wrk apache2-utils)");
  }
  const std::string big = pattern(300'000, 77);
  Nginx nginx(*nginx_path, {{"a.txt", "alpha\n"}, {"big.bin", big}});
  ServiceSpec service{.backends = {{.name = "nginx", .address = nginx.address, .max_connections = 2}}};
  DaemonProcess daemon(
      ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true}.yaml());
  const std::string base = "http://" + daemon.wait_listening_on("web").to_string();
  const Address admin = wait_admin_address(daemon);
  TempDir out;

  // curl: three URLs in one invocation, one connection for all (num_connects 1, then 0 and 0).
  const CommandResult fetched =
      run_command({*curl, "-sS", "-w", "%{http_code} %{num_connects} %{size_download}\\n", base + "/big.bin", "-o",
                   out.path() + "/big", base + "/a.txt", "-o", out.path() + "/a", base + "/ok", "-o", out.path() + "/ok"});
  CHECK(fetched.exit_code == 0);
  CHECK(fetched.output == "200 1 300000\n200 0 6\n200 0 3\n");
  auto file = [&](const std::string& name) {
    std::ifstream in(out.path() + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(sha256_hex(file("big")) == sha256_hex(big));
  CHECK(file("a") == "alpha\n");
  CHECK(file("ok") == "ok\n");

  // wrk, bounded: every response's status and body checked by a script; no errors of any kind.
  const std::string script = out.path() + "/check.lua";
  std::ofstream(script) << "local threads = {}\n"
                           "function setup(thread) table.insert(threads, thread) end\n"
                           "function init(args) good = 0; bad = 0 end\n"
                           "function response(status, headers, body)\n"
                           "  if status == 200 and body == 'ok\\n' then good = good + 1 else bad = bad + 1 end\n"
                           "end\n"
                           "function done(summary, latency, requests)\n"
                           "  local g, b = 0, 0\n"
                           "  for _, t in ipairs(threads) do g = g + t:get('good'); b = b + t:get('bad') end\n"
                           "  io.write(string.format('checked good=%d bad=%d\\n', g, b))\n"
                           "end\n";
  const CommandResult loaded = run_command({*wrk, "-t1", "-c4", "-d2s", "-s", script, base + "/ok"}, {}, 20s);
  INFO(loaded.output);
  CHECK(loaded.exit_code == 0);
  std::smatch counts;
  REQUIRE(std::regex_search(loaded.output, counts, std::regex("checked good=(\\d+) bad=(\\d+)")));
  const long good = std::stol(counts[1]);
  CHECK(good > 100);
  CHECK(counts[2] == "0");
  CHECK(loaded.output.find("Socket errors") == std::string::npos);
  CHECK(loaded.output.find("Non-2xx") == std::string::npos);

  // ab -k: a fixed count, all kept alive, none failed.
  const CommandResult benched = run_command({*ab, "-k", "-n", "2000", "-c", "4", base + "/a.txt"}, {}, 30s);
  INFO(benched.output);
  CHECK(benched.exit_code == 0);
  CHECK(benched.output.find("Complete requests:      2000") != std::string::npos);
  CHECK(benched.output.find("Failed requests:        0") != std::string::npos);
  CHECK(benched.output.find("Keep-Alive requests:    2000") != std::string::npos);
  CHECK(benched.output.find("Document Length:        6 bytes") != std::string::npos);
  CHECK(benched.output.find("Non-2xx") == std::string::npos);

  // Every request Sluice read went to nginx and came back 2xx: none answered by Sluice itself.
  const std::string text = scrape(admin);
  const double requests = metric(text, "sluice_listener_http_requests_total{listener=\"web\"}");
  CHECK(requests >= static_cast<double>(3 + good + 2000));
  CHECK(metric(text, kNginxOk) == requests);
  CHECK(metric(text, "sluice_backend_pool_reuses_total{service=\"web\",backend=\"nginx\",node=\"\"}") > 0.9 * requests);
}
