// The data path: bulk streams with backpressure, half-close, and resets passed on as resets.

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "harness.hpp"
#include "stream_echo.hpp"

using namespace sluice::it;

TEST_CASE("50 concurrent echo streams pass through the daemon byte for byte") {
  const std::uint64_t size = env_or("SLUICE_TEST_STREAM_MIB", 64) << 20;
  constexpr int connections = 50;
  EchoServer echo1;
  EchoServer echo2;
  ServiceSpec service{.backends = {{"echo1", echo1.address()}, {"echo2", echo2.address()}}};
  DaemonProcess daemon(single_service_config(service));
  const Address proxy = daemon.wait_listening_on("web");

  const auto start = Clock::now();
  const std::vector<StreamOutcome> outcomes = stream_echo_concurrently(proxy, connections, size, 1000, 30s);
  MESSAGE(connections << " x " << (size >> 20) << " MiB each way in " << elapsed_ms(start) << " ms");
  check_streams_intact(outcomes, size);
  CHECK(echo1.accepted() == connections / 2);  // round robin, equal weights
  CHECK(echo2.accepted() == connections / 2);
}

TEST_CASE("a client that stops reading is held back by backpressure and loses nothing") {
  EchoServer echo;
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"echo", echo.address()}}}));
  const Address proxy = daemon.wait_listening_on("web");
  const auto resident_before = daemon.status_kib("VmRSS");
  REQUIRE(resident_before.has_value());

  // Send without reading until nothing moves for 1 s: then every buffer on the way is full, and the
  // daemon must have stopped reading rather than buffering. The kernel's socket buffers on the
  // path hold some tens of MiB at most; 512 MiB means the daemon kept reading.
  constexpr std::uint64_t limit = 512ull << 20;
  Client client = Client::connect(proxy);
  ByteStream source(42);
  Sha256 sent_hash;
  std::vector<char> chunk(1 << 20);
  std::size_t chunk_begin = chunk.size();
  std::uint64_t sent = 0;
  while (sent < limit) {
    if (chunk_begin == chunk.size()) {
      source.fill(chunk.data(), chunk.size());
      chunk_begin = 0;
    }
    const ssize_t n = ::send(client.fd(), chunk.data() + chunk_begin, chunk.size() - chunk_begin, MSG_NOSIGNAL);
    if (n > 0) {
      sent_hash.update(chunk.data() + chunk_begin, static_cast<std::size_t>(n));
      chunk_begin += static_cast<std::size_t>(n);
      sent += static_cast<std::uint64_t>(n);
    } else if (errno == EAGAIN) {
      if (poll_until(client.fd(), POLLOUT, Clock::now() + 1s) == 0) break;
    } else {
      FAIL("send: " << errno_text(errno));
    }
  }
  const auto peak = daemon.status_kib("VmHWM");
  REQUIRE(peak.has_value());
  MESSAGE((sent >> 20) << " MiB in flight when the stream stalled; daemon peak RSS " << *peak / 1024
                       << " MiB, " << *resident_before / 1024 << " MiB before");
  CHECK(sent < limit);
  CHECK(*peak - *resident_before < 32 * 1024);

  client.shutdown_write();
  const ReadResult result = client.read_until_end(20s);
  CHECK(result.end == End::eof);
  CHECK(result.data.size() == sent);
  CHECK(sha256_hex(result.data) == sent_hash.hex());
}

TEST_CASE("half-close: the backend answers 3 MiB after the client's EOF and the client gets all of it") {
  const std::string request = pattern(1 << 20, 1);
  const std::string reply = pattern(3 << 20, 2);
  ReplyAfterEofServer backend(reply);
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"replier", backend.address()}}}));
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all(request, 10s);
  client.shutdown_write();
  const ReadResult result = client.read_until_end(10s);

  CHECK(result.end == End::eof);
  CHECK(result.data.size() == reply.size());
  CHECK(sha256_hex(result.data) == sha256_hex(reply));
  std::string received;
  REQUIRE(backend.wait_request(received, 2s));
  CHECK(received.size() == request.size());
  CHECK(sha256_hex(received) == sha256_hex(request));
}

TEST_CASE("a backend reset reaches the client as a reset") {
  ResetServer backend(4);  // reads "ping", then resets
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"resetter", backend.address()}}}));
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all("ping");
  const ReadResult result = client.read_until_end(2s);
  INFO("error: " << (result.error ? errno_text(result.error) : "none"));
  CHECK(result.end == End::reset);
  CHECK(result.data.empty());
  CHECK(backend.accepted() == 1);
}

TEST_CASE("a client reset reaches the backend as a reset") {
  EndRecorderServer backend;
  DaemonProcess daemon(single_service_config(ServiceSpec{.backends = {{"recorder", backend.address()}}}));
  const Address proxy = daemon.wait_listening_on("web");

  Client client = Client::connect(proxy);
  client.send_all("hello");
  REQUIRE_MESSAGE(backend.wait_received(5, 2s), "the backend never received the client's bytes");
  client.close_with_reset();

  std::vector<EndRecorderServer::Record> records;
  REQUIRE_MESSAGE(backend.wait_ended(1, 2s, records), "the backend connection did not end");
  INFO("error: " << (records[0].error ? errno_text(records[0].error) : "none"));
  CHECK(records[0].end == End::reset);
  CHECK(records[0].bytes == 5);
}
