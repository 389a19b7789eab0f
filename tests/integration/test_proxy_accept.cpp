// accept_proxy: a listener behind a front load balancer. The PROXY header's address is the
// client's for the allow list, the access log and what send_proxy sends on (to nginx, which says
// what it saw); a connection without a valid header, or without one in time, is closed, counted
// `bad_proxy_header` and logged; the client's bytes after the header reach the backend intact;
// HAProxy's send-proxy and send-proxy-v2 are understood; only accept_proxy_from may send a header,
// a LOCAL header keeps the socket's addresses, and refusals before the header are counted and logged.

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

#include "harness.hpp"
#include "processes.hpp"
#include "proxy_peers.hpp"
#include "test_support.hpp"

using namespace sluice::it;
using sluice::test::scaled;

namespace {

const std::string kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

// A v2 PROXY header over TCP6 from 2001:db8::7 port 5353 to ::1 port 80.
std::string v2_tcp6_header() {
  std::string block(36, '\0');
  block[0] = '\x20', block[1] = '\x01', block[2] = '\x0d', block[3] = '\xb8', block[15] = '\x07';
  block[31] = '\x01';
  block[32] = '\x14', block[33] = '\xe9';  // 5353
  block[34] = '\x00', block[35] = '\x50';  // 80
  return kV2Signature + std::string{"\x21\x21\x00\x24", 4} + block;
}

std::string rejected(const std::string& listener, const std::string& reason) {
  return "sluice_listener_connections_rejected_total{listener=\"" + listener + "\",reason=\"" + reason + "\"}";
}

// What a refused client sees: the connection closed with nothing read.
void check_closed_unanswered(Client& client) {
  const ReadResult result = client.read_until_end(scaled(3s));
  CHECK(result.data.empty());
  CHECK(result.end != End::timeout);
}

std::string config(const Address& nginx, const Address& nginx_http, const Address& echo) {
  return "admin: { bind: 127.0.0.1:0 }\nlog: { access_log: true }\nhttp: { forwarded: true }\nlisteners:\n"
         "  - name: web\n    bind: 127.0.0.1:0\n    service: nginx-http\n    mode: http\n    accept_proxy: true\n"
         "  - name: inner\n    bind: 127.0.0.1:0\n    service: nginx\n    accept_proxy: true\n"
         "    accept_proxy_timeout: 300ms\n    allow: [203.0.113.0/24, \"2001:db8::/32\"]\n"
         "  - name: echo\n    bind: 127.0.0.1:0\n    service: echo\n    accept_proxy: true\n"
         "services:\n"
         "  - name: nginx\n    send_proxy: v1\n    health_check: { enabled: false }\n"
         "    backends:\n      - name: nginx\n        address: " + nginx.to_string() + "\n"
         "  - name: nginx-http\n    send_proxy: v2\n    health_check: { enabled: false }\n"
         "    backends:\n      - name: nginx\n        address: " + nginx_http.to_string() + "\n"
         "  - name: echo\n    health_check: { enabled: false }\n"
         "    backends:\n      - name: echo\n        address: " + echo.to_string() + "\n";
}

}  // namespace

TEST_CASE("proxy protocol: accept_proxy takes the client from the header for the allow list, the access log and send_proxy, and closes what has no valid header") {
  const auto nginx_path = find_executable("nginx");
  if (!nginx_path) SLUICE_SKIP("nginx is not installed (Debian: nginx libnginx-mod-stream)");
  ProxyProtocolNginx nginx(*nginx_path);
  EchoServer echo;
  DaemonProcess daemon(config(nginx.stream, nginx.http, echo.address()));
  const auto listeners = daemon.wait_listening(3);
  const Address inner = listeners.at("inner");
  const Address admin = wait_admin_address(daemon);

  // The socket's peer (127.0.0.1) is not allowed; the header's clients are, and nginx sees them.
  Client v1 = Client::connect(inner);
  v1.send_all("PROXY TCP4 203.0.113.9 127.0.0.1 4242 80\r\n");
  CHECK(v1.read_line(scaled(2s)) == "203.0.113.9 4242");
  Client v2 = Client::connect(inner);
  v2.send_all(v2_tcp6_header());
  CHECK(v2.read_line(scaled(2s)) == "2001:db8::7 5353");
  // A header in single bytes, each its own segment: read as it comes.
  Client split = Client::connect(inner);
  const int on = 1;
  REQUIRE(::setsockopt(split.fd(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0);
  for (char byte : std::string("PROXY TCP4 203.0.113.10 127.0.0.1 4343 80\r\n")) split.send_all(std::string(1, byte));
  CHECK(split.read_line(scaled(2s)) == "203.0.113.10 4343");

  // A header naming a client outside the allow list: closed, as not_allowed.
  Client denied = Client::connect(inner);
  denied.send_all("PROXY TCP4 198.51.100.1 127.0.0.1 4242 80\r\n");
  check_closed_unanswered(denied);
  // No header, a malformed one, none in time: closed, as bad_proxy_header.
  Client plain = Client::connect(inner);
  plain.send_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  check_closed_unanswered(plain);
  Client malformed = Client::connect(inner);
  malformed.send_all("PROXY TCP4 203.0.113.9 127.0.0.1 99999 80\r\n");
  check_closed_unanswered(malformed);
  Client silent = Client::connect(inner);
  const auto silent_since = Clock::now();
  check_closed_unanswered(silent);
  CHECK(elapsed_ms(silent_since) >= 250);  // accept_proxy_timeout: 300ms

  CHECK(wait_metric(admin, rejected("inner", "bad_proxy_header"), 3, scaled(2s)));
  const std::string text = scrape(admin);
  CHECK(metric(text, rejected("inner", "not_allowed")) == 1);
  CHECK(metric(text, "sluice_listener_connections_accepted_total{listener=\"inner\"}") == 3);
  // Logged with the front's address and what was wrong (the first; a flood is limited per listener).
  const auto logged = daemon.wait_for_line("bad_proxy_header listener=inner peer=127.0.0.1:", scaled(2s));
  REQUIRE(logged.has_value());
  CHECK(logged->find("error=\"no PROXY protocol signature\"") != std::string::npos);
  // The access log's client is the header's (a line is written when its session ends).
  v1.close();
  v2.close();
  CHECK(daemon.wait_for_line("client=203.0.113.9:4242 listener=inner", scaled(2s)).has_value());
  CHECK(daemon.wait_for_line("client=[2001:db8::7]:5353 listener=inner", scaled(2s)).has_value());
  CHECK(daemon.wait_for_line("client=198.51.100.1:4242 listener=inner", scaled(2s)).has_value());

  // mode: http the same: the request after the header is read, and nginx sees the header's client.
  Client http = Client::connect(listeners.at("web"));
  http.send_all("PROXY TCP4 192.0.2.33 127.0.0.1 6000 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto response = read_response(http, scaled(2s));
  CHECK(response.head.status == 200);
  CHECK(response.body == "192.0.2.33 6000\n");
  http.send_all("GET /xff HTTP/1.1\r\nHost: t\r\n\r\n");  // X-Forwarded-For names it too
  const auto forwarded = read_response(http, scaled(2s));
  CHECK(forwarded.body == "192.0.2.33\n");
  http.close();
  CHECK(daemon.wait_for_line("client=192.0.2.33:6000 listener=web", scaled(2s)).has_value());

  // The client's own bytes, in the same segment as the header, reach the backend whole.
  Client echoed = Client::connect(listeners.at("echo"));
  echoed.send_all("PROXY TCP4 203.0.113.9 127.0.0.1 4242 80\r\nhello\n");
  CHECK(echoed.read_line(scaled(2s)) == "hello");
  Client echoed_v2 = Client::connect(listeners.at("echo"));
  echoed_v2.send_all(v2_tcp6_header() + "world\n");
  CHECK(echoed_v2.read_line(scaled(2s)) == "world");
}

TEST_CASE("proxy protocol: behind HAProxy with send-proxy and send-proxy-v2, nginx behind Sluice sees the client's real address and port") {
  const auto nginx_path = find_executable("nginx");
  const auto haproxy_path = find_executable("haproxy");
  if (!nginx_path || !haproxy_path) SLUICE_SKIP("nginx or haproxy is not installed (Debian: nginx libnginx-mod-stream haproxy)");
  ProxyProtocolNginx nginx(*nginx_path);
  DaemonProcess daemon(
      "log: { access_log: true }\nlisteners:\n"
      "  - name: front\n    bind: 127.0.0.1:0\n    service: nginx\n    accept_proxy: true\n    allow: [127.0.0.1/32]\n"
      "services:\n  - name: nginx\n    send_proxy: v2\n    health_check: { enabled: false }\n"
      "    backends:\n      - name: nginx\n        address: " + nginx.stream.to_string() + "\n");
  const Address sluice = daemon.wait_listening_on("front");
  for (int version : {1, 2}) {
    INFO("send-proxy v" << version);
    FrontHaproxy haproxy(*haproxy_path, sluice, version);
    Client client = Client::connect(haproxy.address);
    const Address local = local_address(client.fd());
    CHECK(client.read_line(scaled(3s)) == local.host + " " + std::to_string(local.port));
    client.close();
    CHECK(daemon.wait_for_line("client=" + local.to_string() + " listener=front", scaled(2s)).has_value());
  }
}

TEST_CASE("proxy protocol: accept_proxy_from trusts only the front's address, a LOCAL header keeps the socket's, and clients refused before their header are counted and logged") {
  EchoServer echo;
  const std::string backend = "    backends:\n      - name: echo\n        address: " + echo.address().to_string() + "\n";
  DaemonProcess daemon(
      "admin: { bind: 127.0.0.1:0 }\nlog: { access_log: true }\nlisteners:\n"
      "  - name: trusted\n    bind: 127.0.0.1:0\n    service: echo\n    accept_proxy: true\n"
      "    accept_proxy_from: [127.0.0.1/32]\n    allow: [127.0.0.1/32]\n"
      "  - name: untrusted\n    bind: 127.0.0.1:0\n    service: echo\n    accept_proxy: true\n"
      "    accept_proxy_from: [192.0.2.0/24, \"2001:db8::/32\"]\n"
      "  - name: tight\n    bind: 127.0.0.1:0\n    service: echo\n    accept_proxy: true\n"
      "    accept_proxy_from: [127.0.0.0/8]\n    max_connections: 1\n    accept_proxy_timeout: 3s\n"
      "  - name: open\n    bind: 127.0.0.1:0\n    service: echo\n    accept_proxy: true\n"
      "services:\n  - name: echo\n    health_check: { enabled: false }\n" + backend);
  const auto listeners = daemon.wait_listening(4);
  const Address admin = wait_admin_address(daemon);
  // Without accept_proxy_from anyone may name any client: said at start, for that listener only.
  CHECK(daemon.wait_for_line("accept_proxy_untrusted listener=open", scaled(2s)).has_value());
  CHECK_FALSE(daemon.wait_for_line("accept_proxy_untrusted listener=trusted", Millis(0)).has_value());

  // A peer outside accept_proxy_from: closed before its header is read, as not_allowed, and logged.
  Client stranger = Client::connect(listeners.at("untrusted"));
  stranger.send_all("PROXY TCP4 192.0.2.1 127.0.0.1 4242 80\r\nhello\n");
  check_closed_unanswered(stranger);
  CHECK(wait_metric(admin, rejected("untrusted", "not_allowed"), 1, scaled(2s)));
  CHECK(daemon.wait_for_line("proxy_client_refused listener=untrusted peer=127.0.0.1:", scaled(2s)).has_value());
  CHECK(echo.accepted() == 0);

  // From the trusted front: v2 LOCAL (its health check) and v1 UNKNOWN keep the socket's addresses,
  // which the allow list then checks, and which the access log names.
  Client local = Client::connect(listeners.at("trusted"));
  local.send_all(kV2Signature + std::string{"\x20\x00\x00\x00", 4} + "hello\n");
  CHECK(local.read_line(scaled(2s)) == "hello");
  Client unknown = Client::connect(listeners.at("trusted"));
  unknown.send_all("PROXY UNKNOWN\r\nworld\n");
  CHECK(unknown.read_line(scaled(2s)) == "world");
  local.close();
  unknown.close();
  CHECK(wait_metric(admin, "sluice_listener_connections_accepted_total{listener=\"trusted\"}", 2, scaled(2s)));
  CHECK(daemon.wait_for_line("client=127.0.0.1:", scaled(2s)).has_value());

  // max_connections counts a client still sending its header: the next one is refused at once.
  Client waiting = Client::connect(listeners.at("tight"));
  Client second = Client::connect(listeners.at("tight"));
  check_closed_unanswered(second);
  CHECK(wait_metric(admin, rejected("tight", "max_connections"), 1, scaled(2s)));
  CHECK(daemon.wait_for_line("proxy_client_refused listener=tight peer=127.0.0.1:", scaled(2s)).has_value());
  CHECK(metric(scrape(admin), rejected("tight", "bad_proxy_header")) == 0);
}
