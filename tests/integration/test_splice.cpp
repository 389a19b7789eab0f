// Zero-copy transfer: a direction that carries bulk moves on to splice(2) through a kernel pipe
// (listener `splice: true`, the default). The stream contract holds as with read/write: every byte
// in order (SHA-256 both ways), FIN after the last byte in both orders, resets passed on as resets,
// memory bounded with a slow reader and with a backend that stops reading, byte counters exact.
// Pipes are held only while bytes are in them: idle spliced connections hold none, and no
// descriptor outlives its session. That splice was really used is read from
// `sluice_listener_spliced_bytes_total`, which counts the bytes that splice(2) wrote to a sink.

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <thread>

#include "duplex.hpp"
#include "harness.hpp"
#include "stream_echo.hpp"
#include "test_support.hpp"

using namespace sluice::it;

namespace {

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t kPipeBytes = 256 * KiB;  // what one direction puts in its pipe at most
// Descriptors of the pipes one connection's two spliced directions use at most at once.
constexpr std::size_t kPipesOfOneConnection = 2 * 2;

constexpr const char* kSpliced = R"(sluice_listener_spliced_bytes_total{listener="web"})";
constexpr const char* kActive = R"(sluice_listener_connections_active{listener="web"})";

std::string backend_series(const std::string& name, const std::string& backend) {
  return name + R"({service="web",backend=")" + backend + R"(",node=""})";
}

/// One listener "web" (with `splice` as given; nullopt: the default) in front of `backends`, with
/// the admin listener and the access log.
std::string splice_config(const std::vector<BackendSpec>& backends, std::optional<bool> splice = std::nullopt) {
  return ConfigSpec{.listeners = {ListenerSpec{.splice = splice}},
                    .services = {ServiceSpec{.backends = backends}},
                    .admin = true,
                    .access_log = true}
      .yaml();
}

/// Scrapes until no session is left, then returns that scrape.
std::string scrape_when_idle(const Address& admin) {
  auto text = wait_scrape(admin, [](const std::string& t) { return metric(t, kActive) == 0; }, 10s);
  REQUIRE_MESSAGE(text.has_value(), "sessions still open after 10 s");
  return *text;
}

/// The daemon's open descriptors, pipes apart from the rest (sockets, the epoll, files). /dev/null
/// is left out: Sluice's and libuv's reserves for running out of descriptors (libuv opens its own
/// with the loop's first socket).
struct Descriptors {
  std::size_t pipes = 0;
  std::size_t others = 0;
};
Descriptors descriptors_of(pid_t pid) {
  Descriptors count;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    std::error_code link_error;
    const std::string target = std::filesystem::read_symlink(it->path(), link_error).string();
    if (target == "/dev/null") continue;
    ++(target.starts_with("pipe:") ? count.pipes : count.others);
  }
  return count;
}

/// Counts until `others` descriptors besides pipes are open (an admin connection just served may
/// still be closing), or the deadline passes; returns the last count.
Descriptors descriptors_once_others_are(pid_t pid, std::size_t others, Millis timeout = 2s) {
  const auto deadline = Clock::now() + timeout;
  Descriptors count = descriptors_of(pid);
  while (count.others != others && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);  // the polling period
    count = descriptors_of(pid);
  }
  return count;
}

/// Runs `connections` concurrent echo streams of `size` bytes each way; checks every byte both
/// ways and the backend's byte counters; returns the bytes spliced.
double echo_streams_through(std::optional<bool> splice, int connections, std::uint64_t size) {
  EchoServer echo;
  DaemonProcess daemon(splice_config({{"echo", echo.address()}}, splice));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  const auto start = Clock::now();
  const std::vector<StreamOutcome> outcomes = stream_echo_concurrently(proxy, connections, size, 500, 30s);
  const auto took_ms = elapsed_ms(start);
  check_streams_intact(outcomes, size);
  const std::string text = scrape_when_idle(admin);
  const double total = static_cast<double>(connections * size);
  CHECK(metric(text, backend_series("sluice_backend_sent_bytes_total", "echo")) == total);
  CHECK(metric(text, backend_series("sluice_backend_received_bytes_total", "echo")) == total);
  const double spliced = metric(text, kSpliced);
  const std::string mode = splice ? (*splice ? "on" : "off") : "default (on)";
  MESSAGE(connections << " x " << size / MiB << " MiB each way, splice " << mode << ": " << took_ms << " ms, " << spliced * 100 / (2 * total) << " % of the bytes spliced");
  return spliced;
}

/// What one half-close order did, seen from both ends.
struct HalfClose {
  DuplexOutcome at_client;
  DuplexOutcome at_backend;
  double spliced = 0;
};

/// One session between a client and a backend that run `client_plan` and `backend_plan`; checks
/// that both streams arrived whole and that the access log saw `end_reason`.
HalfClose half_close(const DuplexPlan& client_plan, const DuplexPlan& backend_plan, const std::string& end_reason) {
  DuplexServer backend([&](std::size_t) { return backend_plan; });
  DaemonProcess daemon(splice_config({{"duplex", backend.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  HalfClose seen;
  Client client = Client::connect(proxy);
  seen.at_client = run_duplex(client.fd(), client_plan);
  std::vector<DuplexOutcome> at_backend;
  REQUIRE_MESSAGE(backend.wait_outcomes(1, 10s, at_backend), "the backend's side did not finish");
  seen.at_backend = at_backend[0];

  CHECK_MESSAGE(seen.at_client.failure.empty(), "client: " << seen.at_client.failure);
  CHECK_MESSAGE(seen.at_backend.failure.empty(), "backend: " << seen.at_backend.failure);
  CHECK(seen.at_client.sent == client_plan.send_bytes);
  CHECK(seen.at_backend.received == client_plan.send_bytes);
  CHECK(seen.at_backend.received_sha == sha256_hex(pattern(client_plan.send_bytes, client_plan.seed)));
  CHECK(seen.at_backend.sent == backend_plan.send_bytes);
  CHECK(seen.at_client.received == backend_plan.send_bytes);
  CHECK(seen.at_client.received_sha == sha256_hex(pattern(backend_plan.send_bytes, backend_plan.seed)));
  CHECK(daemon.wait_for_line("bytes_from_client=" + std::to_string(client_plan.send_bytes) + " bytes_from_backend=" +
                                 std::to_string(backend_plan.send_bytes) + " end=" + end_reason,
                             2s));
  seen.spliced = metric(scrape_when_idle(admin), kSpliced);
  return seen;
}

}  // namespace

// ---- whole streams, with and without splice ----

TEST_CASE("splice: 4 concurrent echo streams of 64 MiB each way arrive byte for byte, mostly spliced, counted exactly") {
  const std::uint64_t size = env_or("SLUICE_TEST_STREAM_MIB", 64) * MiB;
  const double spliced = echo_streams_through(std::nullopt, 4, size);
  // All but the first chunks of each direction (read before the switch) and the occasional read
  // that splice passes to read/write.
  CHECK(spliced >= 0.5 * 2 * 4 * static_cast<double>(size));
  CHECK(spliced <= 2 * 4 * static_cast<double>(size));
}

TEST_CASE("splice: false: the same 4 streams take read/write only and arrive byte for byte") {
  const std::uint64_t size = env_or("SLUICE_TEST_STREAM_MIB", 64) * MiB;
  CHECK(echo_streams_through(false, 4, size) == 0);
}

// ---- half-close, both orders ----

TEST_CASE("splice: half-close, client EOF first: the backend's spliced stream goes on after it, FIN after its last byte") {
  constexpr std::uint64_t request = 8 * MiB;
  constexpr std::uint64_t reply = 16 * MiB;
  // The backend sends half its reply, waits for the client's EOF, then the other half.
  const HalfClose seen = half_close(DuplexPlan{.send_bytes = request, .seed = 11},
                                    DuplexPlan{.send_bytes = reply, .seed = 12, .hold_until_peer_eof = reply / 2},
                                    "client_close");
  CHECK(seen.at_backend.sent_at_peer_eof <= reply / 2);
  CHECK(seen.at_client.sent_at_peer_eof == request);
  CHECK(seen.spliced >= static_cast<double>(reply) / 2);
}

TEST_CASE("splice: half-close, backend EOF first: the client's spliced stream goes on after it, FIN after its last byte") {
  constexpr std::uint64_t request = 16 * MiB;
  constexpr std::uint64_t reply = 8 * MiB;
  const HalfClose seen = half_close(DuplexPlan{.send_bytes = request, .seed = 13, .hold_until_peer_eof = request / 2},
                                    DuplexPlan{.send_bytes = reply, .seed = 14}, "backend_close");
  CHECK(seen.at_client.sent_at_peer_eof <= request / 2);
  CHECK(seen.at_backend.sent_at_peer_eof == reply);
  CHECK(seen.spliced >= static_cast<double>(request) / 2);
}

// ---- a slow reader ----

TEST_CASE("splice: a client that slows to 1 KiB/s mid-stream blocks the backend, and Sluice holds at most its 256 KiB pipe") {
  StreamServer backend(StreamServer::Options{.seed = 21, .send_buffer = 64 * KiB});
  DaemonProcess daemon(splice_config({{"stream", backend.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const auto resident_before = daemon.status_kib("VmRSS");
  REQUIRE(resident_before.has_value());

  // Fast at first, so that the direction is spliced when the reader slows down.
  Client client = Client::connect(proxy, ConnectOptions{.receive_buffer = 16 * KiB});
  std::string received = client.read_exact(8 * MiB, 10s);
  const double spliced_fast = metric(scrape(admin), kSpliced);
  REQUIRE_MESSAGE(spliced_fast > 0, "the direction never moved on to splice");

  // Then 1 KiB/s, until the backend's count has not moved for 1 s.
  REQUIRE_MESSAGE(read_slowly_until_held_back(client, received, backend),
                  "the backend was never held back: " << backend.written() << " bytes written");

  // Where the bytes are: read by the client, in the four sockets' kernel queues, or in Sluice's pipe.
  const auto port_filter = [](std::uint16_t port) {
    return "( sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port) + " )";
  };
  const auto backend_side = socket_queues(port_filter(backend.address().port));
  const auto client_side = socket_queues(port_filter(proxy.port));
  const std::uint64_t written_at_plateau = backend.written();
  REQUIRE(backend_side.has_value());
  REQUIRE(client_side.has_value());
  const std::uint64_t in_kernel = backend_side->receive + backend_side->send + client_side->receive + client_side->send;
  const std::int64_t in_sluice = held_in_sluice(written_at_plateau, received.size(), in_kernel);
  for (int i = 0; i < 8; ++i) read_slowly(client, received);
  const std::uint64_t written_later = backend.written();
  const auto resident_later = daemon.status_kib("VmRSS");
  REQUIRE(resident_later.has_value());
  MESSAGE("slow reader after splice: backend wrote " << written_at_plateau / KiB << " KiB, then "
                                                     << (written_later - written_at_plateau) / KiB
                                                     << " KiB in 2 s; kernel queues " << in_kernel / KiB
                                                     << " KiB; in Sluice " << in_sluice << " B; daemon RSS "
                                                     << *resident_before << " KiB before, " << *resident_later
                                                     << " KiB after");
  CHECK(in_sluice >= 0);
  CHECK(in_sluice <= static_cast<std::int64_t>(kPipeBytes));
  CHECK(written_later - written_at_plateau <= kPipeBytes);
  CHECK(*resident_later - *resident_before < 4 * 1024);  // KiB
  CHECK(is_stream_prefix(received, 21));

  client.close_with_reset();
  std::vector<StreamServer::Record> records;
  REQUIRE_MESSAGE(backend.wait_ended(1, 5s, records), "the backend's send never failed after the client left");
  CHECK(records[0].error != 0);
}

TEST_CASE("splice: a backend that stops reading mid-upload holds the client back, and Sluice holds at most its 256 KiB pipe") {
  MeteredSink sink;
  DaemonProcess daemon(splice_config({{"sink", sink.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const auto resident_before = daemon.status_kib("VmRSS");
  REQUIRE(resident_before.has_value());

  // Fast at first, so that the direction is spliced when the backend stops reading.
  Client client = Client::connect(proxy);
  Upload upload(23);
  sink.allow(8 * MiB);
  REQUIRE(upload.more(client.fd(), 8 * MiB, sluice::test::scaled(10s)));
  REQUIRE(sink.wait_read(8 * MiB, sluice::test::scaled(10s)));
  REQUIRE_MESSAGE(metric(scrape(admin), kSpliced) > 0, "the upload never moved on to splice");

  // Then nothing is read, and the client sends until its send has not moved for 1 s.
  REQUIRE_MESSAGE(upload.until_held_back(client.fd(), sluice::test::scaled(20s)),
                  "the client was never held back: " << upload.sent() << " bytes sent");
  const std::uint64_t read_by_backend = sink.read();
  const auto queues = session_queues(proxy.port, sink.address().port);
  REQUIRE(queues.has_value());
  const std::int64_t in_sluice = held_in_sluice(upload.sent(), read_by_backend, queues->total());
  const auto resident_held = daemon.status_kib("VmRSS");
  REQUIRE(resident_held.has_value());
  MESSAGE("stopped backend after splice: client sent " << upload.sent() / KiB << " KiB, backend read "
                                                       << read_by_backend / KiB << " KiB; kernel queues "
                                                       << queues->total() / KiB << " KiB; in Sluice " << in_sluice
                                                       << " B; daemon RSS " << *resident_before << " KiB before, "
                                                       << *resident_held << " KiB held");
  CHECK(read_by_backend == 8 * MiB);
  CHECK(in_sluice >= 0);
  CHECK(in_sluice <= static_cast<std::int64_t>(kPipeBytes));
  CHECK(*resident_held - *resident_before < 4 * 1024);  // KiB

  sink.release();
  REQUIRE(upload.more(client.fd(), MiB, sluice::test::scaled(10s)));
  client.shutdown_write();
  MeteredSink::Record record;
  REQUIRE_MESSAGE(sink.wait_ended(sluice::test::scaled(10s), record), "the upload never ended at the backend");
  CHECK(record.end == End::eof);
  CHECK(record.bytes == upload.sent());
  CHECK(record.sha == upload.sha());
}

// ---- resets in the middle of a spliced stream ----

TEST_CASE("splice: a backend reset in the middle of a spliced stream reaches the client as a reset") {
  StreamServer backend(StreamServer::Options{.seed = 31, .reset_after = 24 * MiB});
  DaemonProcess daemon(splice_config({{"stream", backend.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  const ReadResult result = client.read_until_end(20s);
  INFO("ended with " << result.end << " after " << result.data.size() << " bytes");
  CHECK(result.end == End::reset);
  CHECK(result.data.size() <= 24 * MiB);
  CHECK(is_stream_prefix(result.data, 31));
  CHECK(metric(scrape_when_idle(admin), kSpliced) > 0);
  CHECK(daemon.wait_for_line("end=reset", 2s));
}

TEST_CASE("splice: a client reset in the middle of a spliced upload reaches the backend as a reset") {
  EndRecorderServer backend;
  DaemonProcess daemon(splice_config({{"recorder", backend.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client client = Client::connect(proxy);
  const std::string chunk = pattern(MiB, 41);
  for (int i = 0; i < 16; ++i) client.send_all(chunk, 10s);
  REQUIRE_MESSAGE(backend.wait_received(8 * MiB, 10s), "the backend never received the first 8 MiB");
  REQUIRE(metric(scrape(admin), kSpliced) > 0);
  client.close_with_reset();

  std::vector<EndRecorderServer::Record> records;
  REQUIRE_MESSAGE(backend.wait_ended(1, 5s, records), "the backend connection did not end");
  INFO("error: " << (records[0].error ? errno_text(records[0].error) : "none") << ", bytes " << records[0].bytes);
  CHECK(records[0].end == End::reset);
  CHECK(records[0].bytes <= 16 * MiB);
}

// ---- descriptors: pipes only while bytes are in them ----

TEST_CASE("splice: 24 idle spliced connections hold no pipe, and every descriptor is returned when they end") {
  constexpr int connections = 24;
  constexpr std::size_t kExchange = 64 * KiB;
  constexpr int kExchanges = 16;  // 1 MiB each way per connection, in both directions spliced
  EchoServer echo;
  DaemonProcess daemon(splice_config({{"echo", echo.address()}}));
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const Descriptors baseline = descriptors_of(daemon.pid());  // before any admin connection

  std::vector<Client> clients;
  const std::string block = pattern(kExchange, 51);
  for (int i = 0; i < connections; ++i) {
    clients.push_back(Client::connect(proxy));
    for (int k = 0; k < kExchanges; ++k) {
      clients.back().send_all(block, 5s);
      REQUIRE(clients.back().read_exact(kExchange, 5s) == block);
    }
  }
  // Every connection is open and quiet now: sockets only, and the pool's free pipes. Connections
  // ran one at a time, so at most its two directions' pipes were in use at once, and the pool kept
  // those: 4 descriptors. One pipe still held by an idle connection makes it 6.
  const double spliced = metric(scrape(admin), kSpliced);
  const Descriptors idle = descriptors_once_others_are(daemon.pid(), baseline.others + 2 * connections);
  MESSAGE(connections << " idle spliced connections: " << idle.pipes - baseline.pipes << " pipe descriptors, "
                      << idle.others - baseline.others << " others beyond the baseline; "
                      << spliced / MiB << " MiB spliced");
  CHECK(spliced >= connections * 2 * (kExchanges - 2) * static_cast<double>(kExchange));
  CHECK(idle.others == baseline.others + 2 * connections);  // a client and a backend socket each
  CHECK(idle.pipes >= baseline.pipes);
  CHECK(idle.pipes - baseline.pipes <= kPipesOfOneConnection);

  for (Client& client : clients) {
    client.shutdown_write();
    CHECK(client.read_until_end(5s).end == End::eof);
  }
  scrape_when_idle(admin);
  const Descriptors after = descriptors_once_others_are(daemon.pid(), baseline.others);
  CHECK(after.others == baseline.others);
  CHECK(after.pipes - baseline.pipes <= kPipesOfOneConnection);  // the pool's, nothing more
}

// ---- reload ----

TEST_CASE("splice: a reload that only turns splice on or off applies to the next bulk transfer") {
  EchoServer echo;
  TempConfig file(splice_config({{"echo", echo.address()}}, false));
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  constexpr const char* kReloadsOk = R"(sluice_config_reloads_total{result="success"})";
  auto stream = [&](std::uint64_t seed) {
    const StreamOutcome outcome = stream_echo(proxy, 8 * MiB, seed, 10s);
    CHECK_MESSAGE(outcome.failure.empty(), outcome.failure);
    CHECK(outcome.received_sha == outcome.sent_sha);
    return metric(scrape_when_idle(admin), kSpliced);
  };

  CHECK(stream(61) == 0);
  file.write(splice_config({{"echo", echo.address()}}, true));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, 5s));
  const double spliced_on = stream(62);
  CHECK(spliced_on > 0);
  file.write(splice_config({{"echo", echo.address()}}, false));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 2, 5s));
  CHECK(stream(63) == spliced_on);
}
