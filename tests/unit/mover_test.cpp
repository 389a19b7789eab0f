// Mover, one direction of a session, on real sockets and a real uv loop: bytes arrive intact and
// in order (read/write and splice), the watermark bounds what it holds and reading resumes as the
// sink drains, EOF becomes a shutdown after the last byte (two movers: half-close each way), and
// a reset or a failed write is reported as such.

#include "sluice/proxy/mover.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <optional>

#include "socket_pairs.hpp"
#include "sluice/worker/loop_resources.hpp"

using sluice::Chunk;
using sluice::Mover;
using sluice::test::Kind;
using sluice::test::StreamEnd;

namespace {

struct Recorder final : sluice::MoverEvents {
  std::size_t in = 0;
  std::size_t out = 0;
  std::size_t spliced = 0;
  int held_full_count = 0;
  bool ended = false;
  bool done = false;
  bool failed_ = false;
  bool source_broken = false;

  void moved_in(Mover&, std::size_t bytes) override { in += bytes; }
  void moved_out(Mover&, std::size_t bytes, bool by_splice) override {
    out += bytes;
    if (by_splice) spliced += bytes;
  }
  void held_full(Mover&) override { ++held_full_count; }
  void source_ended(Mover&) override { ended = true; }
  void finished(Mover&) override { done = true; }
  void failed(Mover& mover, bool broken_source) override {
    failed_ = true;
    source_broken = broken_source;
    mover.stop();  // as the session does: it closes both sockets
  }
};

// from.peer -> [from.stream] -> mover -> [to.stream] -> to.peer
struct OneWay {
  bool splice_allowed;
  sluice::test::TestLoop loop;
  sluice::LoopResources resources{loop.get()};
  StreamEnd from;
  StreamEnd to;
  Recorder events;
  std::optional<Mover> mover;

  OneWay(Kind kind, bool splice, bool with_sink = true) : splice_allowed(splice) {
    REQUIRE(sluice::test::open_pair(loop.get(), kind, from));
    REQUIRE(sluice::test::open_pair(loop.get(), kind, to));
    mover.emplace(resources, events, splice_allowed);
    mover->set_source(from.stream);
    if (with_sink) mover->set_sink(to.stream);
  }
  ~OneWay() {
    // Writes still queued come back cancelled into the mover: it must outlive the streams.
    mover->stop();
    from.tcp.close();
    from.pipe.close();
    to.tcp.close();
    to.pipe.close();
    loop.turn(2);
    mover.reset();
    CHECK(resources.buffers.in_use() == 0);
  }
};

// Feeds `data` into from.peer (then FIN) while reading to.peer, until EOF there.
struct Transfer {
  explicit Transfer(std::vector<std::uint8_t> bytes) : data(std::move(bytes)) {}
  std::vector<std::uint8_t> data;
  std::size_t sent = 0;
  bool shut = false;
  std::vector<std::uint8_t> got;
  bool eof = false;
  int error = 0;

  // The reader takes at most `read_limit` a turn: a slow sink, so that writes queue, split and
  // the FIN waits behind them.
  void step(OneWay& t, bool read = true, std::size_t read_limit = SIZE_MAX) {
    sent += sluice::test::write_some(t.from.peer, data.data() + sent, data.size() - sent);
    if (sent == data.size() && !shut) shut = ::shutdown(t.from.peer, SHUT_WR) == 0;
    if (read) sluice::test::read_some(t.to.peer, got, eof, error, read_limit);
  }
};

void check_intact(Kind kind, bool splice) {
  constexpr std::size_t kSize = 4 * 1024 * 1024 + 123;  // a few MiB, not a multiple of a chunk
  OneWay t(kind, splice);
  Transfer transfer(sluice::test::pattern(kSize, 7));
  t.mover->start();
  REQUIRE(t.loop.run_until([&] { return transfer.eof || transfer.error != 0; },
                           [&] { transfer.step(t, true, 48 * 1024); }));
  CHECK(transfer.error == 0);
  CHECK(transfer.got.size() == kSize);
  CHECK((transfer.got == transfer.data));
  CHECK(t.events.ended);
  CHECK(t.events.done);
  CHECK(t.mover->finished());
  CHECK(t.events.in == kSize);
  CHECK(t.events.out == kSize);
  CHECK(t.mover->bytes_total() == kSize);
  CHECK(t.mover->unsent_bytes() == 0);
  if (splice) {
    CHECK(t.events.spliced > kSize / 2);  // bulk: most of it without a copy
  } else {
    CHECK(t.events.spliced == 0);
  }
  CHECK(t.resources.pipes.in_use() == 0);
}

}  // namespace

TEST_CASE("mover: a few MiB arrive intact and in order, then EOF becomes the sink's shutdown") {
  SUBCASE("AF_UNIX, read/write") { check_intact(Kind::unix_socket, false); }
  SUBCASE("TCP, read/write") { check_intact(Kind::tcp, false); }
  SUBCASE("TCP, splice(2)") { check_intact(Kind::tcp, true); }
}

TEST_CASE("mover: the FIN waits behind the bytes still queued for the sink") {
  OneWay t(Kind::unix_socket, /*splice=*/false);
  // A small sink buffer, so that most of the bytes wait in libuv's write queue.
  uv_os_fd_t sink_fd;
  REQUIRE(uv_fileno(sluice::as_handle(t.to.stream), &sink_fd) == 0);
  const int small = 32 * 1024;
  REQUIRE(setsockopt(sink_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  Transfer transfer(sluice::test::pattern(200 * 1024, 13));  // below the watermark: all is read
  t.mover->start();
  REQUIRE(t.loop.run_until([&] { return t.events.ended; }, [&] { transfer.step(t, /*read=*/false); }));
  CHECK(t.mover->unsent_bytes() > 0);
  CHECK_FALSE(t.events.done);  // the shutdown is not done before the last byte is written
  REQUIRE(t.loop.run_until([&] { return transfer.eof || transfer.error != 0; }, [&] { transfer.step(t); }));
  CHECK(transfer.error == 0);
  CHECK((transfer.got == transfer.data));
  CHECK(t.events.done);
}

TEST_CASE("mover: a sink that does not read stops the reading at the watermark, draining resumes it") {
  for (const bool splice : {false, true}) {
    CAPTURE(splice);
    constexpr std::size_t kSize = 8 * 1024 * 1024;
    OneWay t(Kind::tcp, splice);
    Transfer transfer(sluice::test::pattern(kSize, 11));
    t.mover->start();
    // The sink's peer reads nothing: the mover fills the sink's socket, then holds bytes, then stops.
    REQUIRE(t.loop.run_until([&] { return t.mover->bytes_total() > 0 && !t.mover->reading(); },
                             [&] { transfer.step(t, /*read=*/false); }));
    const std::uint64_t read_when_stopped = t.mover->bytes_total();
    CHECK(read_when_stopped < kSize);
    if (splice) {
      // The pipe is the buffer: at most one, and no chunk.
      CHECK(t.resources.pipes.in_use() <= 1);
      CHECK(t.mover->unsent_bytes() <= sluice::PipePool::kCapacityBytes);
    } else {
      CHECK(t.mover->unsent_bytes() > Mover::kHighWatermarkBytes);
      CHECK(t.mover->unsent_bytes() <= Mover::kHighWatermarkBytes + Chunk::kCapacity);
      CHECK(t.resources.buffers.in_use() * Chunk::kCapacity <= Mover::kHighWatermarkBytes + 2 * Chunk::kCapacity);
    }
    for (int i = 0; i < 20; ++i) {  // the writer goes on: nothing more is read meanwhile
      transfer.step(t, /*read=*/false);
      t.loop.turn();
    }
    CHECK(t.mover->bytes_total() == read_when_stopped);
    CHECK_FALSE(t.mover->reading());
    // The sink drains: reading resumes and everything arrives.
    REQUIRE(t.loop.run_until([&] { return transfer.eof || transfer.error != 0; }, [&] { transfer.step(t); }));
    CHECK(transfer.error == 0);
    CHECK((transfer.got == transfer.data));
    CHECK(t.events.done);
  }
}

TEST_CASE("mover: a chunk boundary exactly at the watermark keeps reading, one byte more stops it") {
  OneWay t(Kind::unix_socket, /*splice=*/false, /*with_sink=*/false);  // bytes are held: no sink yet
  const auto data = sluice::test::pattern(Mover::kHighWatermarkBytes + 1, 3);
  t.mover->start();
  std::size_t sent = 0;
  REQUIRE(t.loop.run_until([&] { return t.mover->bytes_total() == Mover::kHighWatermarkBytes; }, [&] {
    sent += sluice::test::write_some(t.from.peer, data.data() + sent, Mover::kHighWatermarkBytes - sent);
  }));
  CHECK(t.mover->unsent_bytes() == Mover::kHighWatermarkBytes);  // at the watermark, not above
  CHECK(t.mover->reading());
  CHECK(t.events.held_full_count == 0);
  REQUIRE(sluice::test::write_some(t.from.peer, data.data() + sent, 1) == 1);
  REQUIRE(t.loop.run_until([&] { return t.mover->bytes_total() == data.size(); }));
  CHECK_FALSE(t.mover->reading());
  CHECK(t.events.held_full_count == 1);
  // The sink is set (the backend connected): the held bytes go first, in order, and reading resumes.
  t.mover->set_sink(t.to.stream);
  REQUIRE(::shutdown(t.from.peer, SHUT_WR) == 0);
  std::vector<std::uint8_t> got;
  bool eof = false;
  int error = 0;
  REQUIRE(t.loop.run_until([&] { return eof || error != 0; }, [&] { sluice::test::read_some(t.to.peer, got, eof, error); }));
  CHECK((got == data));
  CHECK(t.events.done);
}

TEST_CASE("mover: a reset of the source is reported as a broken source, a failed write as a broken sink") {
  SUBCASE("source reset") {
    OneWay t(Kind::tcp, false);
    t.mover->start();
    REQUIRE(sluice::test::write_text(t.from.peer, "abc") == 3);
    REQUIRE(t.loop.run_until([&] { return t.events.in == 3; }));
    sluice::test::close_with_reset(t.from.peer);
    REQUIRE(t.loop.run_until([&] { return t.events.failed_; }));
    CHECK(t.events.source_broken);
    CHECK_FALSE(t.events.done);  // never passed on as a clean EOF
  }
  SUBCASE("sink reset") {
    OneWay t(Kind::tcp, false);
    t.mover->start();
    sluice::test::close_with_reset(t.to.peer);
    const auto data = sluice::test::pattern(64 * 1024, 5);
    std::size_t sent = 0;
    REQUIRE(t.loop.run_until([&] { return t.events.failed_; }, [&] {
      if (sent < data.size()) sent += sluice::test::write_some(t.from.peer, data.data() + sent, data.size() - sent);
    }));
    CHECK_FALSE(t.events.source_broken);
  }
}

namespace {

// Two movers as a session uses them; `client_first` closes its sending side first.
void check_half_close(bool client_first) {
  sluice::test::TestLoop loop;
  sluice::LoopResources resources{loop.get()};
  StreamEnd client;   // client.peer is the client
  StreamEnd backend;  // backend.peer is the backend
  REQUIRE(sluice::test::open_pair(loop.get(), Kind::unix_socket, client));
  REQUIRE(sluice::test::open_pair(loop.get(), Kind::unix_socket, backend));
  Recorder up_events;
  Recorder down_events;
  const bool no_splice = false;
  auto up = std::make_unique<Mover>(resources, up_events, no_splice);
  auto down = std::make_unique<Mover>(resources, down_events, no_splice);
  up->set_source(client.stream);
  up->set_sink(backend.stream);
  down->set_source(backend.stream);
  down->set_sink(client.stream);
  up->start();
  down->start();

  StreamEnd& first = client_first ? client : backend;  // closes its sending side first
  StreamEnd& second = client_first ? backend : client;
  std::vector<std::uint8_t> at_second, at_first;
  bool second_eof = false, first_eof = false;
  int error = 0;

  REQUIRE(sluice::test::write_text(first.peer, "request") == 7);
  REQUIRE(::shutdown(first.peer, SHUT_WR) == 0);
  REQUIRE(loop.run_until([&] { return second_eof; }, [&] { sluice::test::read_some(second.peer, at_second, second_eof, error); }));
  CHECK(std::string(at_second.begin(), at_second.end()) == "request");
  // The other way is still open: the answer comes after the first side's FIN.
  REQUIRE(sluice::test::write_text(second.peer, "answer") == 6);
  REQUIRE(loop.run_until([&] { return at_first.size() == 6; }, [&] { sluice::test::read_some(first.peer, at_first, first_eof, error); }));
  CHECK_FALSE(first_eof);
  REQUIRE(::shutdown(second.peer, SHUT_WR) == 0);
  REQUIRE(loop.run_until([&] { return first_eof; }, [&] { sluice::test::read_some(first.peer, at_first, first_eof, error); }));
  CHECK(std::string(at_first.begin(), at_first.end()) == "answer");
  CHECK(error == 0);
  CHECK(up_events.done);
  CHECK(down_events.done);
  client.pipe.close();
  backend.pipe.close();
  loop.turn(2);
}

}  // namespace

TEST_CASE("mover: half-close each way: the answer still flows after the other side's FIN") {
  SUBCASE("the client closes first") { check_half_close(true); }
  SUBCASE("the backend closes first") { check_half_close(false); }
}
