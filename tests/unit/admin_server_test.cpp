// The admin HTTP server against a real event loop on its own thread, spoken to over plain sockets.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/admin/admin_server.hpp"
#include "sluice/metrics/metrics.hpp"
#include "sluice/metrics/process_metrics.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/http/message.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

using namespace sluice;

namespace {

struct HttpReply {
  int status = 0;
  http::MessageHead head;
  std::string body;

  std::optional<std::string> header(const std::string& name) const {
    const auto value = head.header(name);
    return value ? std::optional<std::string>(*value) : std::nullopt;
  }
};

// Sends `request` as it is to "ip:port" / "[ip]:port", optionally half-closes, and reads the
// reply until the server closes. Blocking, with a receive timeout so a bug cannot hang the test.
HttpReply http_exchange(const std::string& address, const std::string& request,
                   bool half_close = false) {
  const auto parsed = sluice::parse_ip_address(address);
  REQUIRE(parsed.has_value());
  const sockaddr_storage storage = *parsed;
  const int fd = socket(storage.ss_family, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  const timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  REQUIRE(connect(fd, sluice::as_sockaddr(&storage), sluice::sockaddr_length(storage)) == 0);
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  if (half_close) shutdown(fd, SHUT_WR);
  std::string raw;
  std::array<char, 16384> chunk{};
  ssize_t n = 0;
  while ((n = recv(fd, chunk.data(), chunk.size(), 0)) > 0) raw.append(chunk.data(), n);
  const int recv_errno = n < 0 ? errno : 0;
  close(fd);
  REQUIRE_MESSAGE(n == 0, "recv failed: " << std::strerror(recv_errno));

  std::string why;
  auto reply = http::read_whole_message(http::Kind::response, raw, &why, request.starts_with("HEAD "));
  REQUIRE_MESSAGE(reply.has_value(), why << ": " << raw);
  CHECK(reply->head.version_minor == 1);
  return HttpReply{reply->head.status, std::move(reply->head), std::move(reply->body)};
}

HttpReply get(const std::string& address, const std::string& path) {
  return http_exchange(address, "GET " + path + " HTTP/1.1\r\nHost: test\r\nUser-Agent: x\r\nConnection: close\r\n\r\n");
}

// A connection that stays open: send a request, read one whole response (not until the close).
class KeptAlive {
 public:
  explicit KeptAlive(const std::string& address) {
    const auto parsed = sluice::parse_ip_address(address);
    REQUIRE(parsed.has_value());
    fd_ = socket(parsed->ss_family, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    const timeval timeout{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    REQUIRE(connect(fd_, sluice::as_sockaddr(&*parsed), sluice::sockaddr_length(*parsed)) == 0);
  }
  ~KeptAlive() { close(fd_); }
  KeptAlive(const KeptAlive&) = delete;
  KeptAlive& operator=(const KeptAlive&) = delete;

  http::Message exchange(const std::string& request) {
    REQUIRE(send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    std::array<char, 16384> chunk{};
    while (reader_.messages().empty()) {
      const ssize_t n = recv(fd_, chunk.data(), chunk.size(), 0);
      REQUIRE_MESSAGE(n > 0, "the server closed or timed out before a whole response");
      REQUIRE(reader_.feed(std::string_view(chunk.data(), static_cast<std::size_t>(n))).stop != http::Stop::error);
    }
    http::Message message = std::move(reader_.messages().front());
    reader_.messages().pop_front();
    return message;
  }
  /// Whether the server closes the connection (EOF) with nothing more sent.
  bool closed_by_server() {
    char byte = 0;
    return recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  http::MessageReader reader_{http::Kind::response};
};

// The value of the first sample line starting with `prefix` (name and labels) in `text`.
double sample_value(const std::string& text, const std::string& prefix) {
  const auto at = text.find("\n" + prefix + " ");
  REQUIRE_MESSAGE(at != std::string::npos, "no sample " << prefix);
  return std::stod(text.substr(at + prefix.size() + 2));
}

// A service whose backend counter a 1 ms timer bumps on the loop thread while the test thread
// scrapes: what the admin server must never read from its own threads.
class LoopWithAdmin {
 public:
  explicit LoopWithAdmin(const std::string& bind) {
    uv_loop_init(&loop_);
    ServiceConfig config;
    config.name = "web";
    config.backends = {BackendConfig{"node-a", Endpoint{"10.0.0.1", 8000}, "n1", 1, 1}};
    service_ = std::make_unique<Service>(config, 0);

    admin_ = std::make_unique<AdminServer>(&loop_,
                                           [this](std::string_view path) { return render(path); });
    std::string why;
    REQUIRE_MESSAGE(admin_->start(*parse_endpoint(bind), why), why);

    uv_timer_init(&loop_, &ticker_);
    ticker_.data = this;
    uv_timer_start(
        &ticker_,
        [](uv_timer_t* timer) {
          auto* self = static_cast<LoopWithAdmin*>(timer->data);
          Backend& backend = self->service_->backends()[0];
          ++backend.stats.connections_total;
          backend.stats.active.set(uv_hrtime(), backend.stats.connections_total % 2);
        },
        1, 1);
    uv_async_init(&loop_, &quit_, [](uv_async_t* async) {
      auto* self = static_cast<LoopWithAdmin*>(async->data);
      self->admin_->stop();  // on the loop thread, as the contract says
      uv_close(sluice::as_handle(&self->ticker_), nullptr);
      uv_close(sluice::as_handle(&self->quit_), nullptr);
    });
    quit_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  ~LoopWithAdmin() {
    uv_async_send(&quit_);
    thread_.join();  // the loop ends once the admin server and our handles are closed
    admin_.reset();
    CHECK(uv_loop_close(&loop_) == 0);
  }

  AdminServer& admin() { return *admin_; }
  std::string address() const { return admin_->bound_address(); }

 private:
  std::optional<AdminResponse> render(std::string_view path) {
    if (path == "/metrics") {
      const std::array<const Service*, 1> services = {service_.get()};
      auto families = collect_metrics({}, services, DaemonStats{}, uv_hrtime());
      for (auto& f : collect_process_metrics()) families.push_back(std::move(f));
      return AdminResponse{200, std::string(kMetricsContentType), serialize_metrics(families)};
    }
    if (path == "/throws") throw std::runtime_error("boom");
    return std::nullopt;
  }

  uv_loop_t loop_{};
  uv_timer_t ticker_{};
  uv_async_t quit_{};
  std::unique_ptr<Service> service_;
  std::unique_ptr<AdminServer> admin_;
  std::thread thread_;
};

const std::string kConnections =
    "sluice_backend_connections_total{service=\"web\",backend=\"node-a\",node=\"n1\"}";

bool ipv6_loopback_available() {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, sluice::as_sockaddr(&address), sizeof address) == 0;
  close(fd);
  return ok;
}

}  // namespace

TEST_CASE("admin server: 200 scrapes of /metrics see the loop's counter only grow") {
  LoopWithAdmin loop("127.0.0.1:0");
  REQUIRE(loop.address().starts_with("127.0.0.1:"));
  CHECK(loop.address() != "127.0.0.1:0");
  double previous = -1;
  double first = -1;
  for (int i = 0; i < 200; ++i) {
    const HttpReply reply = get(loop.address(), "/metrics");
    REQUIRE(reply.status == 200);
    CHECK(reply.header("Content-Type") == std::string(kMetricsContentType));
    CHECK(reply.header("Content-Length") == std::to_string(reply.body.size()));
    const double value = sample_value(reply.body, kConnections);
    CHECK(value >= previous);
    if (first < 0) first = value;
    previous = value;
  }
  CHECK(previous > first);  // 200 round trips take more than a millisecond
}

TEST_CASE("admin server: /healthz answers without the loop, 503 while draining") {
  LoopWithAdmin loop("127.0.0.1:0");
  HttpReply reply = get(loop.address(), "/healthz");
  CHECK(reply.status == 200);
  CHECK(reply.body == "ok\n");
  loop.admin().set_draining(true);
  reply = get(loop.address(), "/healthz");
  CHECK(reply.status == 503);
  CHECK(reply.body == "draining\n");
}

TEST_CASE("admin server: 404, 405, 400, 500, HEAD and query strings") {
  LoopWithAdmin loop("127.0.0.1:0");
  CHECK(get(loop.address(), "/nope").status == 404);
  CHECK(get(loop.address(), "/metrics?debug=1").status == 200);
  CHECK(get(loop.address(), "/throws").status == 500);

  const HttpReply post =
      http_exchange(loop.address(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(post.status == 405);
  CHECK(post.header("Allow") == "GET, HEAD");

  const HttpReply head = http_exchange(loop.address(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(std::stoul(head.header("Content-Length").value_or("0")) > 0);

  CHECK(http_exchange(loop.address(), "nonsense\r\n\r\n").status == 400);
  // A bare LF is a line end to some parsers and not to others: refused (request smuggling).
  CHECK(http_exchange(loop.address(), "GET /metrics HTTP/1.0\n\n").status == 400);
  // The head limit: an oversized head is refused whole (431); bytes that are not HTTP at all are
  // a 400 from the first bad byte, without waiting for the limit.
  CHECK(http_exchange(loop.address(), "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(10000, 'x')).status == 431);
  CHECK(http_exchange(loop.address(), std::string(10000, 'x')).status == 400);
}

TEST_CASE("admin server: keep-alive as the client asks, as Prometheus scrapes") {
  LoopWithAdmin loop("127.0.0.1:0");
  {
    KeptAlive connection(loop.address());
    for (int i = 0; i < 3; ++i) {
      const http::Message reply = connection.exchange("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
      CHECK(reply.head.status == 200);
      CHECK(!reply.head.header("Connection").has_value());
      CHECK(reply.body.find(kConnections) != std::string::npos);
    }
    CHECK(connection.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").body == "ok\n");
    const http::Message last = connection.exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(last.head.status == 200);
    CHECK(last.head.header("Connection") == "close");
    CHECK(connection.closed_by_server());
  }
  {  // HTTP/1.0 keeps alive only when asked, and says so
    KeptAlive connection(loop.address());
    const http::Message reply = connection.exchange("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(reply.head.header("Connection") == "keep-alive");
    CHECK(connection.exchange("GET /metrics HTTP/1.0\r\n\r\n").head.status == 200);
    CHECK(connection.closed_by_server());
  }
  {  // an error, or a request after which more bytes came at once, closes
    KeptAlive connection(loop.address());
    CHECK(connection.exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").head.status == 405);
    CHECK(connection.closed_by_server());
    KeptAlive pipelined(loop.address());
    const http::Message first = pipelined.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(first.head.header("Connection") == "close");
    CHECK(pipelined.closed_by_server());
  }
}

TEST_CASE("admin server: a client that half-closes after its request still gets the answer") {
  LoopWithAdmin loop("127.0.0.1:0");
  const HttpReply reply = http_exchange(loop.address(), "GET /metrics HTTP/1.0\r\n\r\n", true);
  CHECK(reply.status == 200);
  CHECK(reply.body.find(kConnections) != std::string::npos);
}

TEST_CASE("admin server: binds IPv6 loopback with port 0") {
  if (!ipv6_loopback_available()) {
    SLUICE_SKIP("no IPv6 loopback here");
  }
  LoopWithAdmin loop("[::1]:0");
  REQUIRE(loop.address().starts_with("[::1]:"));
  CHECK(get(loop.address(), "/metrics").status == 200);
}

TEST_CASE("admin server: a request the loop does not answer in time gets a 503") {
  uv_loop_t loop{};
  uv_loop_init(&loop);  // never run while the request waits: the loop is "stuck"
  AdminServer admin(
      &loop, [](std::string_view) { return AdminResponse{}; }, std::chrono::milliseconds(200));
  std::string why;
  REQUIRE_MESSAGE(admin.start(*parse_endpoint("127.0.0.1:0"), why), why);
  const auto started = std::chrono::steady_clock::now();
  const HttpReply reply = get(admin.bound_address(), "/metrics");
  CHECK(reply.status == 503);
  // libuv timers count whole milliseconds of a cached clock: up to 1 ms early by a fine clock.
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(195));
  // Still answered while the loop is stuck: health does not need it.
  CHECK(get(admin.bound_address(), "/healthz").status == 200);
  admin.stop();  // this thread is the loop's thread: it is not running anywhere else
  uv_run(&loop, UV_RUN_DEFAULT);  // runs the close callback; the queued render never happens
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("admin server: a bind that fails says why, and stop() after it is harmless") {
  uv_loop_t loop{};
  uv_loop_init(&loop);
  {
    LoopWithAdmin running("127.0.0.1:0");
    AdminServer second(&loop, [](std::string_view) { return std::nullopt; });
    std::string why;
    CHECK_FALSE(second.start(*parse_endpoint(running.address()), why));
    CHECK(why.find("address already in use") != std::string::npos);
    second.stop();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
