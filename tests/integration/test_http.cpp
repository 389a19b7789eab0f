// mode: http: each request one job (issue 18). Real sluice-backend processes behind the daemon,
// real keep-alive clients; counts asserted at the backends' answers and in /metrics.

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "harness.hpp"
#include "http_backend.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;

namespace {

// sluice-backend on a port the kernel picks; its "listening on HOST:PORT" line says which.
RunningBackend start_http_backend(const std::string& name) {
  return start_listening_process(
      Command{{SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0", "--name", name, "--mean-service", "2ms"}},
      "sluice-backend " + name + " listening on 127.0.0.1:", 5s);
}

// Three one-slot (http) or unlimited (tcp) backends behind one shared-queue round-robin service.
ConfigSpec three_backends(const std::vector<RunningBackend>& backends, const std::string& mode, std::uint32_t slots) {
  ServiceSpec service{.policy = "round_robin"};
  const char* names[] = {"a", "b", "c"};
  for (std::size_t i = 0; i < backends.size(); ++i) {
    service.backends.push_back({.name = names[i], .address = backends[i].address, .max_connections = slots});
  }
  ConfigSpec config{.listeners = {ListenerSpec{.mode = mode}}, .services = {service}, .admin = true};
  return config;
}

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

// K persistent connections, `rounds` times: a request on each, then each one's response. Returns
// how many responses each backend name gave.
std::map<std::string, int> persistent_rounds(const Address& proxy, int connections, int rounds) {
  std::vector<Client> clients;
  for (int i = 0; i < connections; ++i) clients.push_back(Client::connect(proxy));
  std::map<std::string, int> served;
  for (int round = 0; round < rounds; ++round) {
    for (auto& client : clients) client.send_all(get("/r"));
    for (auto& client : clients) {
      const auto response = read_response(client, 5s);
      REQUIRE(response.head.status == 200);
      const auto at = response.body.find("backend=");
      REQUIRE(at != std::string::npos);
      ++served[response.body.substr(at + 8, response.body.find(' ', at) - at - 8)];
    }
  }
  return served;
}

}  // namespace

TEST_CASE("http: 4 persistent connections spread requests 1/3 each over 3 one-slot backends, where tcp gives 2/1/1") {
  std::vector<RunningBackend> backends;
  for (const char* name : {"b1", "b2", "b3"}) backends.push_back(start_http_backend(name));
  constexpr int kConnections = 4;
  constexpr int kRounds = 30;  // 120 requests

  std::vector<int> tcp_counts;
  {
    DaemonProcess daemon(three_backends(backends, "tcp", 0).yaml());
    for (const auto& [name, count] : persistent_rounds(daemon.wait_listening_on("web"), kConnections, kRounds)) {
      tcp_counts.push_back(count);
    }
  }
  std::sort(tcp_counts.begin(), tcp_counts.end());
  CHECK(tcp_counts == std::vector<int>{30, 30, 60});

  DaemonProcess daemon(three_backends(backends, "http", 1).yaml());
  const Address admin = wait_admin_address(daemon);
  const auto served = persistent_rounds(daemon.wait_listening_on("web"), kConnections, kRounds);
  REQUIRE(served.size() == 3);
  for (const auto& [name, count] : served) {
    INFO("backend " << name << " served " << count << " of 120");
    CHECK(count >= 34);  // 1/3 is 40; 2/1/1 would put one at 60 and two at 30
    CHECK(count <= 46);
  }
  const std::string text = scrape(admin);
  double requests = 0;
  double reuses = 0;
  for (const char* name : {"a", "b", "c"}) {
    const std::string labels = std::string("{service=\"web\",backend=\"") + name + "\",node=\"\"";
    requests += metric(text, "sluice_backend_connections_total" + labels + "}");
    reuses += metric(text, "sluice_backend_pool_reuses_total" + labels + "}");
    CHECK(metric(text, "sluice_backend_http_responses_total" + labels + ",code=\"2xx\"}") ==
          metric(text, "sluice_backend_connections_total" + labels + "}"));
  }
  CHECK(requests == 120);   // the slot metrics count requests in http mode
  CHECK(reuses >= 120 - 3 * 4);  // at most a few new connections per backend: the rest reused
  CHECK(metric(text, "sluice_listener_http_requests_total{listener=\"web\"}") == 120);
}

TEST_CASE("http: pipelined requests answered in order, HEAD without body, HTTP/1.0 and Connection: close end the connection") {
  RunningBackend backend = start_http_backend("only");  // one backend, no slot limit
  std::vector<RunningBackend> one;
  one.push_back(std::move(backend));
  DaemonProcess daemon(three_backends(one, "http", 0).yaml());
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all(get("/1") + get("/2") + get("/3"));
  for (int i = 1; i <= 3; ++i) {
    const auto response = read_response(client);
    CHECK(response.head.status == 200);
    CHECK(response.body == "backend=only node=unknown\n");
  }
  // HEAD: the head with the backend's Content-Length and no body; the next response follows at once.
  client.send_all("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n");
  std::string head;
  for (std::string line = client.read_line(); line != "\r" && !line.empty(); line = client.read_line()) head += line;
  CHECK(head.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(head.find("Content-Length: 26") != std::string::npos);
  client.send_all(get("/after-head"));
  CHECK(read_response(client).body == "backend=only node=unknown\n");

  Client old = Client::connect(proxy);
  old.send_all("GET / HTTP/1.0\r\n\r\n");
  const ReadResult whole = old.read_until_end(2s);
  CHECK(whole.end == End::eof);
  CHECK(whole.data.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(whole.data.find("Connection: close\r\n") != std::string::npos);

  Client closing = Client::connect(proxy);
  closing.send_all(get("/", "Connection: close\r\n"));
  CHECK(closing.read_until_end(2s).end == End::eof);
}

TEST_CASE("http: errors are HTTP answers counted by reason: 400, 431, 503 no backend") {
  // A backend address nothing listens on, retries 0: every connect fails.
  ServiceSpec service{.policy = "round_robin", .retries = 0, .backends = {{"gone", Address{"127.0.0.1", 1}}}};
  ConfigSpec config{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true,
                    .http = "{ max_header_bytes: 1024 }"};
  DaemonProcess daemon(config.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  auto answer = [&](const std::string& request) {
    Client client = Client::connect(proxy);
    client.send_all(request);
    return client.read_until_end(3s);
  };
  const ReadResult bad = answer("GARBAGE\r\n\r\n");
  CHECK(bad.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(bad.end == End::eof);
  const ReadResult large = answer("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'x') + "\r\n\r\n");
  CHECK(large.data.rfind("HTTP/1.1 431 ", 0) == 0);
  const ReadResult down = answer(get("/", "Connection: close\r\n"));
  CHECK(down.data.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(down.data.find("Retry-After: 1\r\n") != std::string::npos);

  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"bad_request\"}") == 1);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"header_too_large\"}") == 1);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"connect_failed\"}") == 1);
}
