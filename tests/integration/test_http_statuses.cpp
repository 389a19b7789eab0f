// mode: http, the rest of the exchanges a client may meet (issue 18): Expect: 100-continue, the
// bodiless statuses on a kept-alive connection, a status Sluice has no phrase for, an HTTP/1.0
// request without Host, and too many header fields. The backend is the test's own
// (http_backend.hpp); every answer is checked byte for byte.

#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"
#include "http_backend.hpp"

using namespace sluice::it;

namespace {

ConfigSpec http_config(const Address& backend) {
  ServiceSpec service{.backends = {{.name = "a", .address = backend}}};
  return ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true};
}

// The test's backend behind a mode: http listener with admin.
struct HttpSetup {
  HttpTestBackend backend;
  DaemonProcess daemon{http_config(backend.address()).yaml()};
  Address proxy = daemon.wait_listening_on("web");
  Address admin = wait_admin_address(daemon);
};

// Reads from `client` until `want` bytes came (or its end): what came.
std::string read_bytes(Client& client, std::size_t want, Millis timeout = 5s) {
  std::string got;
  const auto deadline = Clock::now() + timeout;
  while (got.size() < want && Clock::now() < deadline) {
    const std::string more = read_available(client, std::chrono::duration_cast<Millis>(deadline - Clock::now()));
    if (more.empty()) break;
    got += more;
  }
  return got;
}

const std::string kBackendA = "{service=\"web\",backend=\"a\",node=\"\"}";

}  // namespace

TEST_CASE_FIXTURE(HttpSetup, "http: Expect: 100-continue, the client sends its body only after the backend's 100 and the backend sees it once") {
  Client client = Client::connect(proxy);
  const std::string body = pattern(50'000, 9);
  client.send_all("POST /continue HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n");
  // Nothing but the interim answer comes before the body is sent.
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  CHECK(read_bytes(client, interim.size()) == interim);
  client.send_all(body);
  const auto response = read_http_response(client);
  CHECK(response.head.status == 200);
  CHECK(response.body.size() == body.size());
  CHECK(sha256_hex(response.body) == sha256_hex(body));
  const auto heads = backend.heads();
  REQUIRE(heads.size() == 1);
  CHECK(heads[0].header("Expect") == "100-continue");
  CHECK(heads[0].header("Content-Length") == std::to_string(body.size()));

  // The connection goes on: a second request on it, to the same pooled backend connection.
  client.send_all("GET /ok HTTP/1.1\r\nHost: test\r\n\r\n");
  CHECK(read_http_response(client).body == "ok\n");
  CHECK(backend.requests() == 2);
  CHECK(backend.accepted() == 1);
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"2xx\"}") == 2);
  // The interim answer is not a response of its own.
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"1xx\"}") == 0);
}

TEST_CASE_FIXTURE(HttpSetup, "http: 204 and 304 without a body and 418 with the backend's phrase, pipelined on one kept-alive connection") {
  Client client = Client::connect(proxy);
  auto get = [](const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"; };
  client.send_all(get("/status/204") + get("/status/304") + get("/status/418") + get("/ok") + get("/status/204"));
  // Exactly these bytes, in order: a body after a 204 or 304 would shift every later response.
  const std::string expected = "HTTP/1.1 204 No Content\r\n\r\n"
                               "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 12\r\n\r\n"
                               "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 7\r\n\r\nteapot\n"
                               "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nok\n"
                               "HTTP/1.1 204 No Content\r\n\r\n";
  CHECK(read_bytes(client, expected.size()) == expected);
  // Still open and kept alive: one more, then Connection: close ends it.
  client.send_all("GET /status/304 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
  const ReadResult last = client.read_until_end(5s);
  CHECK(last.end == End::eof);
  CHECK(last.data == "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
  CHECK(backend.requests() == 6);
  CHECK(backend.accepted() == 1);
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"2xx\"}") == 3);
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"3xx\"}") == 2);
  CHECK(metric(text, "sluice_backend_http_responses_total{service=\"web\",backend=\"a\",node=\"\",code=\"4xx\"}") == 1);
  CHECK(metric(text, "sluice_backend_pool_reuses_total" + kBackendA) == 5);
}

TEST_CASE_FIXTURE(HttpSetup, "http: an HTTP/1.0 request without Host reaches the backend as HTTP/1.1 with the backend's address as Host") {
  Client client = Client::connect(proxy);
  client.send_all("GET /headers HTTP/1.0\r\nAccept: */*\r\n\r\n");
  const ReadResult answer = client.read_until_end(5s);
  CHECK(answer.end == End::eof);  // HTTP/1.0 without keep-alive: closed after the response
  const auto heads = backend.heads();
  REQUIRE(heads.size() == 1);
  CHECK(heads[0].version_minor == 1);
  CHECK(heads[0].header("Host") == backend.address().to_string());
  CHECK(heads[0].header("Accept") == "*/*");
  CHECK(answer.data.find("Host: " + backend.address().to_string() + "\n") != std::string::npos);
}

TEST_CASE_FIXTURE(HttpSetup, "http: Host per RFC 9112 3.2, HTTP/1.1 without Host or with two is 400 and never forwarded, an absolute-form target's authority is the Host") {
  for (const char* bad : {"GET /headers HTTP/1.1\r\n\r\n", "GET /headers HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                          "GET http://b/headers HTTP/1.1\r\nHost: a\r\n\r\n"}) {
    CAPTURE(bad);
    Client client = Client::connect(proxy);
    client.send_all(std::string(bad) + "GET /headers HTTP/1.1\r\nHost: next\r\n\r\n");  // never read
    const ReadResult refused = client.read_until_end(5s);
    CHECK(refused.data.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(refused.data.find("HTTP/1.1", 1) == std::string::npos);  // one answer
    CHECK(refused.end == End::eof);
  }
  CHECK(backend.heads().empty());
  Client old = Client::connect(proxy);
  old.send_all("GET http://origin.example:8080/headers HTTP/1.0\r\n\r\n");
  CHECK(old.read_until_end(5s).end == End::eof);
  const auto heads = backend.heads();
  REQUIRE(heads.size() == 1);
  CHECK(heads[0].target == "http://origin.example:8080/headers");
  CHECK(heads[0].header("Host") == "origin.example:8080");
  CHECK(metric(scrape(admin), "sluice_http_errors_total{listener=\"web\",reason=\"bad_request\"}") == 3);
}

TEST_CASE_FIXTURE(HttpSetup, "http: a request with 101 header fields is answered 431 and closed, one with 100 goes through") {
  auto with_fields = [](int count) {  // Host and count - 1 others
    std::string head = "GET /ok HTTP/1.1\r\nHost: test\r\n";
    for (int i = 1; i < count; ++i) head += "X-F" + std::to_string(i) + ": v\r\n";
    return head + "\r\n";
  };

  Client many = Client::connect(proxy);
  many.send_all(with_fields(101));
  const ReadResult refused = many.read_until_end(5s);
  CHECK(refused.data.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0) == 0);
  CHECK(refused.data.find("Connection: close\r\n") != std::string::npos);
  CHECK(refused.end == End::eof);

  Client enough = Client::connect(proxy);
  enough.send_all(with_fields(100));
  CHECK(read_http_response(enough).body == "ok\n");
  CHECK(backend.requests() == 1);  // the refused one never reached it
  const std::string text = scrape(admin);
  CHECK(metric(text, "sluice_http_errors_total{listener=\"web\",reason=\"header_too_large\"}") == 1);
}

TEST_CASE("http: Sluice's own 503 to a HEAD has no body, so the kept-alive connection carries the next answer intact") {
  // Nothing listens at the backend's address and retries is 0: each request is a 503 connect_failed.
  ServiceSpec service{.retries = 0, .backends = {{"gone", Address{"127.0.0.1", 1}}}};
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}}.yaml());
  Client client = Client::connect(daemon.wait_listening_on("web"));
  client.send_all("HEAD /a HTTP/1.1\r\nHost: test\r\n\r\nGET /b HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
  const ReadResult both = client.read_until_end(5s);
  CHECK(both.end == End::eof);
  const std::string head_answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 24\r\nRetry-After: 1\r\n\r\n";
  CHECK(both.data == head_answer + "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                                   "503 Service Unavailable\n");
}
