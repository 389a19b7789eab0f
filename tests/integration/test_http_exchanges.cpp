// mode: http, request by request (issue 18): bodies both ways hashed end to end, the errors Sluice
// answers itself (408, 504, 502) with their series, the pooled-close retry, an Upgrade tunnel and
// the forwarding headers. The backend is the test's own (http_backend.hpp): its path picks what it
// does, so each failure is certain rather than timed.

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <thread>

#include "harness.hpp"
#include "http_backend.hpp"

using namespace sluice::it;

namespace {

ConfigSpec http_config(const Address& backend, const std::string& http = "", std::uint32_t retries = 2) {
  ServiceSpec service{.retries = retries, .backends = {{.name = "a", .address = backend}}};
  return ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true, .http = http};
}

std::string errors_series(const std::string& reason) {
  return "sluice_http_errors_total{listener=\"web\",reason=\"" + reason + "\"}";
}
const std::string kBackendA = "{service=\"web\",backend=\"a\",node=\"\"}";

std::string request(const std::string& method, const std::string& path, const std::string& extra = "") {
  return method + " " + path + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

// `body` as a chunked request body in pieces of `piece` bytes.
std::string chunked(const std::string& body, std::size_t piece) {
  std::string out;
  for (std::size_t at = 0; at < body.size(); at += piece) {
    const std::string part = body.substr(at, piece);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    out += size + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// A status line and headers read line by line; nothing after the blank line is consumed.
std::string read_head(Client& client) {
  std::string head;
  for (std::string line = client.read_line(2s); line != "\r"; line = client.read_line(2s)) head += line + "\n";
  return head;
}

}  // namespace

TEST_CASE("http: bodies of a few MiB both ways, Content-Length and chunked, hashed end to end on one kept-alive connection") {
  HttpTestBackend backend;
  DaemonProcess daemon(http_config(backend.address()).yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  // 4 MiB; 2 MiB under the sanitizers, which run smaller streams (tests/CMakeLists.txt).
  const std::size_t size = std::size_t{env_or("SLUICE_TEST_STREAM_MIB", 64) >= 32 ? 4u : 2u} << 20;

  Client client = Client::connect(proxy);
  const std::string upload = pattern(size, 18);
  const std::string sha = sha256_hex(upload);
  // Sent from a thread of its own: the echo comes back while the body is still going out.
  auto exchange = [&](const std::string& head, const std::string& body) {
    std::string send_error;  // an exception may not leave a thread
    std::thread sender([&] {
      try {
        client.send_all(head + body, 30s);
      } catch (const std::exception& e) {
        send_error = e.what();
      }
    });
    sluice::http::Message response;
    try {
      response = read_http_response(client, 30s);
    } catch (...) {
      sender.join();
      throw;
    }
    sender.join();
    CHECK_MESSAGE(send_error.empty(), send_error);
    return response;
  };
  const auto by_length =
      exchange(request("PUT", "/echo/length", "Content-Length: " + std::to_string(size) + "\r\n"), upload);
  CHECK(by_length.head.status == 200);
  CHECK(by_length.head.framing == sluice::http::Framing::content_length);
  CHECK(by_length.body.size() == size);
  CHECK(sha256_hex(by_length.body) == sha);

  const auto by_chunks = exchange(request("POST", "/echo/chunked", "Transfer-Encoding: chunked\r\n"), chunked(upload, 100'000));
  CHECK(by_chunks.head.status == 200);
  CHECK(by_chunks.head.framing == sluice::http::Framing::chunked);
  CHECK(by_chunks.body.size() == size);
  CHECK(sha256_hex(by_chunks.body) == sha);

  // The backend saw each body's framing as re-emitted, and both on one pooled connection.
  const auto heads = backend.heads();
  REQUIRE(heads.size() == 2);
  CHECK(heads[0].content_length == size);
  CHECK(heads[1].framing == sluice::http::Framing::chunked);
  CHECK(backend.accepted() == 1);
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_pool_reuses_total" + kBackendA) == 1);
  CHECK(metric(text, "sluice_backend_sent_bytes_total" + kBackendA) >= 2.0 * static_cast<double>(size));
}

TEST_CASE("http: 408 for a head not complete within request_timeout, 504 for no response within response_timeout, 502 for a backend closing first") {
  HttpTestBackend backend;
  ConfigSpec config = http_config(backend.address(), "{ request_timeout: 300ms, response_timeout: 400ms }");
  config.access_log = true;
  DaemonProcess daemon(config.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client slow = Client::connect(proxy);
  slow.send_all("GET / HTTP/1.1\r\nHost: te");  // and never the rest
  const auto start = Clock::now();
  const ReadResult timed_out = slow.read_until_end(3s);
  CHECK(timed_out.data.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK(timed_out.data.find("Connection: close\r\n") != std::string::npos);
  CHECK(timed_out.end == End::eof);
  CHECK(elapsed_ms(start) >= 250);
  CHECK(backend.requests() == 0);

  Client waiting = Client::connect(proxy);
  waiting.send_all(request("GET", "/silent"));
  const ReadResult gateway_timeout = waiting.read_until_end(3s);
  CHECK(gateway_timeout.data.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0) == 0);
  CHECK(gateway_timeout.end == End::eof);

  Client dropped = Client::connect(proxy);
  dropped.send_all(request("GET", "/close"));
  const ReadResult bad_gateway = dropped.read_until_end(3s);
  CHECK(bad_gateway.data.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(bad_gateway.end == End::eof);

  const std::string text = scrape(admin);
  CHECK(metric(text, errors_series("request_timeout")) == 1);
  CHECK(metric(text, errors_series("gateway_timeout")) == 1);
  CHECK(metric(text, errors_series("bad_gateway")) == 1);
  CHECK(metric(text, errors_series("bad_request")) == 0);
  CHECK(metric(text, errors_series("response_aborted")) == 0);
  CHECK(metric(text, "sluice_listener_http_requests_total{listener=\"web\"}") == 2);
  // One HTTP access line each, the 408 too although it had no method or path yet.
  CHECK(daemon.wait_for_line("method=- path=- status=408", 2s));
  CHECK(daemon.wait_for_line("method=GET path=/silent status=504", 2s));
  CHECK(daemon.wait_for_line("method=GET path=/close status=502", 2s));
}

TEST_CASE("http: a pooled connection the backend closed under a request is retried once on a new one, one it closed while idle is dropped") {
  HttpTestBackend backend;
  // An idle pooled connection lives far longer than the waits below: only its EOF can drop it.
  DaemonProcess daemon(http_config(backend.address(), "{ pool_idle_timeout: 60s }").yaml(), {"--log-level", "debug"});
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  client.send_all(request("GET", "/flaky/1"));
  CHECK(read_http_response(client).body == "fine\n");
  // The second GET goes out on the pooled connection, which the backend closes unanswered.
  client.send_all(request("GET", "/flaky/2"));
  const auto retried = read_http_response(client);
  CHECK(retried.head.status == 200);
  CHECK(retried.body == "fine\n");
  CHECK(backend.requests() == 3);  // the first, the one dropped, its retry
  CHECK(backend.accepted() == 2);
  CHECK(daemon.wait_for_line("retry service=web backend=a", 2s));
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_pool_reuses_total" + kBackendA) == 1);
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"2xx\"}") == 2);
  CHECK(metric(text, errors_series("bad_gateway")) == 0);

  // A POST is not idempotent, but its head alone (no body) went out: still retried safely.
  client.send_all(request("POST", "/flaky/3"));
  CHECK(read_http_response(client).body == "fine\n");

  // A backend closing a connection idle in the pool: dropped there, the next GET connects anew.
  const std::string open = "sluice_backend_pool_connections_open" + kBackendA;
  client.send_all(request("GET", "/bye"));
  CHECK(read_http_response(client).body == "ok\n");
  CHECK(wait_metric(admin, open, 0, 5s));
  const std::uint64_t accepted = backend.accepted();
  client.send_all(request("GET", "/after-bye"));
  CHECK(read_http_response(client).body == "ok\n");
  CHECK(backend.accepted() == accepted + 1);
  CHECK(metric(scrape(admin), open) == 1);
  CHECK(daemon.count_lines("retry service=web") == 2);  // the two above, none for this one
}

TEST_CASE("http: an Upgrade becomes a byte tunnel both ways after the 101") {
  HttpTestBackend backend;
  DaemonProcess daemon(http_config(backend.address()).yaml());
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all(request("GET", "/upgrade", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: abc\r\n"));
  const std::string head = read_head(client);
  CHECK(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(head.find("Upgrade: websocket\r\n") != std::string::npos);
  CHECK(head.find("Connection: upgrade\r\n") != std::string::npos);
  const auto heads = backend.heads();
  REQUIRE(heads.size() == 1);
  CHECK(heads[0].header("Upgrade") == "websocket");
  CHECK(heads[0].header("Sec-WebSocket-Key") == "abc");

  // Bytes that are not HTTP, both ways, several times.
  for (int round = 0; round < 3; ++round) {
    const std::string frame = pattern(100'000, 40 + static_cast<std::uint64_t>(round));
    client.send_all(frame);
    CHECK(sha256_hex(client.read_exact(frame.size(), 5s)) == sha256_hex(frame));
  }
  // The client's half-close reaches the backend after its last bytes, and the echo of those still
  // comes back before the backend's own EOF.
  const std::string last = pattern(200'000, 50);
  client.send_all(last);
  client.shutdown_write();
  const ReadResult end = client.read_until_end(5s);
  CHECK(end.end == End::eof);
  CHECK(end.data.size() == last.size());
  CHECK(sha256_hex(end.data) == sha256_hex(last));
}

TEST_CASE("http: a tunnel quiet for the listener's idle_timeout is closed") {
  HttpTestBackend backend;
  ConfigSpec config = http_config(backend.address());
  config.listeners[0].idle_timeout = "300ms";
  DaemonProcess daemon(config.yaml());
  Client client = Client::connect(daemon.wait_listening_on("web"));
  client.send_all(request("GET", "/upgrade", "Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  CHECK(read_head(client).rfind("HTTP/1.1 101 ", 0) == 0);
  const auto start = Clock::now();
  const ReadResult end = client.read_until_end(3s);
  CHECK(end.end != End::timeout);
  CHECK(elapsed_ms(start) >= 250);
}

TEST_CASE("http: with http.forwarded the backend sees X-Forwarded-For 127.0.0.1 and X-Forwarded-Proto http") {
  HttpTestBackend backend;
  DaemonProcess daemon(http_config(backend.address(), "{ forwarded: true }").yaml());
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all(request("GET", "/headers", "X-Forwarded-Proto: https\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n"));
  const auto response = read_http_response(client);
  CHECK(response.head.status == 200);
  CHECK(response.body.find("X-Forwarded-For: 127.0.0.1\n") != std::string::npos);
  CHECK(response.body.find("X-Forwarded-Proto: http\n") != std::string::npos);
  CHECK(response.body.find("Forwarded: for=127.0.0.1;proto=http\n") != std::string::npos);
  CHECK(response.body.find("https") == std::string::npos);
  CHECK(response.body.find("X-Drop") == std::string::npos);
  CHECK(response.body.find("Connection") == std::string::npos);
}

TEST_CASE("http: a connection the listener refuses logs an HTTP access line without a request") {
  HttpTestBackend backend;
  ConfigSpec config = http_config(backend.address());
  config.listeners[0].max_connections = 1;
  config.access_log = true;
  DaemonProcess daemon(config.yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client held = Client::connect(proxy);
  REQUIRE(wait_metric(admin, "sluice_listener_connections_active{listener=\"web\"}", 1, 5s));
  Client refused = Client::connect(proxy);
  const ReadResult end = refused.read_until_end(3s);
  CHECK(end.data.empty());
  CHECK(end.end != End::timeout);
  CHECK(daemon.wait_for_line("method=- path=- status=0", 2s));
  CHECK(daemon.wait_for_line("end=max_connections", 2s));
  // The one admitted still works.
  held.send_all(request("GET", "/"));
  CHECK(read_http_response(held).body == "ok\n");
}
