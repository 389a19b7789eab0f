// send_proxy against a real parser of the PROXY protocol (nginx `listen ... proxy_protocol`): in
// tcp and http mode, v1 and v2, IPv4 and IPv6, the backend sees each client's own address and port;
// in http mode no backend connection carries two clients; health checks send a header without
// addresses, which a strict backend accepts.

#include <doctest/doctest.h>

#include <string>
#include <thread>

#include "harness.hpp"
#include "processes.hpp"
#include "proxy_peers.hpp"
#include "test_support.hpp"

using namespace sluice::it;
using sluice::test::scaled;

namespace {

// The answer of ProxyProtocolNginx to `client`: its address and port as the header gave them.
std::string seen_as(const Client& client) {
  const Address local = local_address(client.fd());
  return local.host + " " + std::to_string(local.port) + "\n";
}

// Services v1 and v2 (send_proxy each) in front of `backend`; listeners `PREFIX-v1-4`, `-v2-4` on
// 127.0.0.1 and `-v1-6`, `-v2-6` on ::1, in `mode`.
std::string send_proxy_config(const Address& backend, const std::string& mode) {
  std::string yaml = "admin: { bind: 127.0.0.1:0 }\nlisteners:\n";
  for (const char* version : {"v1", "v2"}) {
    for (const char* family : {"4", "6"}) {
      yaml += std::string("  - name: ") + version + "-" + family + "\n    bind: " +
              (family[0] == '4' ? "127.0.0.1:0" : "\"[::1]:0\"") + "\n    service: " + version +
              "\n    mode: " + mode + "\n";
    }
  }
  yaml += "services:\n";
  for (const char* version : {"v1", "v2"}) {
    yaml += std::string("  - name: ") + version + "\n    send_proxy: " + version +
            "\n    health_check: { enabled: false }\n    backends:\n      - name: nginx\n        address: " +
            backend.to_string() + "\n";
  }
  return yaml;
}

}  // namespace

TEST_CASE("proxy protocol: send_proxy v1 and v2 in tcp mode, IPv4 and IPv6: nginx's stream module sees each client's own address and port") {
  const auto nginx_path = find_executable("nginx");
  if (!nginx_path) SLUICE_SKIP("nginx is not installed (Debian: nginx libnginx-mod-stream)");
  ProxyProtocolNginx nginx(*nginx_path);
  DaemonProcess daemon(send_proxy_config(nginx.stream, "tcp"));
  const auto listeners = daemon.wait_listening(4);
  for (const auto& entry : listeners) {
    INFO("listener " << entry.first);
    for (int i = 0; i < 3; ++i) {
      Client client = Client::connect(entry.second);
      CHECK(client.read_line(scaled(2s)) + "\n" == seen_as(client));
    }
  }
}

TEST_CASE("proxy protocol: send_proxy v1 and v2 in http mode: every response names its own client, and no backend connection is pooled") {
  const auto nginx_path = find_executable("nginx");
  if (!nginx_path) SLUICE_SKIP("nginx is not installed (Debian: nginx libnginx-mod-stream)");
  ProxyProtocolNginx nginx(*nginx_path);
  DaemonProcess daemon(send_proxy_config(nginx.http, "http"));
  const auto listeners = daemon.wait_listening(4);
  const Address admin = wait_admin_address(daemon);
  int requests = 0;
  for (const auto& entry : listeners) {
    INFO("listener " << entry.first);
    // Two kept-alive clients in turn: a pooled connection would answer one with the other's address.
    Client first = Client::connect(entry.second);
    Client second = Client::connect(entry.second);
    for (int round = 0; round < 3; ++round) {
      for (Client* client : {&first, &second}) {
        client->send_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        const auto response = read_response(*client, scaled(2s));
        CHECK(response.head.status == 200);
        CHECK(response.body == seen_as(*client));
        ++requests;
      }
    }
  }
  const std::string text = scrape(admin);
  for (const char* service : {"v1", "v2"}) {
    const std::string labels = std::string("{service=\"") + service + "\",backend=\"nginx\",node=\"\"}";
    CHECK(metric(text, "sluice_backend_pool_reuses_total" + labels) == 0);
    CHECK(metric(text, "sluice_backend_connections_total" + labels) == requests / 2);
  }
}

TEST_CASE("proxy protocol: with send_proxy, HTTP health checks send a header without addresses, which nginx with proxy_protocol accepts") {
  const auto nginx_path = find_executable("nginx");
  if (!nginx_path) SLUICE_SKIP("nginx is not installed (Debian: nginx libnginx-mod-stream)");
  ProxyProtocolNginx nginx(*nginx_path);
  std::string yaml = "admin: { bind: 127.0.0.1:0 }\nlisteners:\n";
  yaml += "  - name: web\n    bind: 127.0.0.1:0\n    service: v2\n";
  yaml += "services:\n";
  // The same strict backend checked by three services: with a v1 header, a v2 one, and none.
  for (const char* version : {"v1", "v2", "off"}) {
    yaml += std::string("  - name: ") + version + "\n    send_proxy: " + version +
            "\n    health_check: { interval: 100ms, timeout: 100ms, rise: 1, fall: 1, http: { path: /ok } }\n"
            "    backends:\n      - name: nginx\n        address: " + nginx.http.to_string() + "\n";
  }
  DaemonProcess daemon(yaml);
  daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  // Backends start up; `fall: 1` takes one down at its first failed check. Without a header nginx
  // closes the check's connection ("broken header"), so `off` goes down.
  CHECK(daemon.wait_for_line("backend_state service=off backend=nginx node=- state=down", scaled(5s)).has_value());
  // Five more of its checks refused (one nginx line each; the first line is the test's own probe
  // of nginx), and as many of v1's and v2's, on the same interval, passed.
  const auto deadline = Clock::now() + scaled(10s);
  while (nginx.process->count_lines("broken header") < 6 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);  // the polling period
  }
  CHECK(nginx.process->count_lines("broken header") >= 6);
  CHECK(daemon.count_lines("state=down") == 1);
  const std::string text = scrape(admin);
  CHECK(metric(text, R"(sluice_backend_up{service="off",backend="nginx",node=""})") == 0);
  CHECK(metric(text, R"(sluice_backend_up{service="v1",backend="nginx",node=""})") == 1);
  CHECK(metric(text, R"(sluice_backend_up{service="v2",backend="nginx",node=""})") == 1);
}
