// SplicePump on loopback TCP sockets: bytes go source -> pipe -> sink and the pipe goes back once
// empty; a sink that blocks keeps them in the pipe until drain(); FIN is source_eof; a pipe with
// bytes left at the end is closed, never reused; copy_out takes them through user space.

#include "sluice/proxy/splice_pump.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <vector>

#include "socket_pairs.hpp"

using sluice::PipePool;
using sluice::SplicePump;

namespace {

// source_peer -> source | pump | sink -> sink_peer
struct Pair {
  int source = -1, source_peer = -1, sink = -1, sink_peer = -1;
  Pair() {
    REQUIRE(sluice::test::tcp_pair(source, source_peer));
    REQUIRE(sluice::test::tcp_pair(sink, sink_peer));
    for (int fd : {source, source_peer, sink, sink_peer}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  ~Pair() {
    for (int fd : {source, source_peer, sink, sink_peer}) ::close(fd);
  }
  // The sink's peer reads nothing: its socket fills, then the pipe holds what is left. Returns the
  // outcome that ended the filling (sink_blocked unless something failed); `sent` counts `data`.
  SplicePump::Outcome fill_until_blocked(SplicePump& pump, PipePool& pool, const std::vector<std::uint8_t>& data,
                                         std::size_t& sent) {
    SplicePump::Result result;
    for (int i = 0; i < 10000 && result.outcome != SplicePump::Outcome::sink_blocked; ++i) {
      sent += sluice::test::write_some(source_peer, data.data() + sent, data.size() - sent);
      result = pump.pump(source, sink, pool, INT_MAX);
      if (result.outcome != SplicePump::Outcome::idle) break;
    }
    return result.outcome;
  }
  void read_all(std::vector<std::uint8_t>& out) {
    bool eof = false;
    int error = 0;
    sluice::test::read_some(sink_peer, out, eof, error);
    CHECK(error == 0);
  }
};

// A pump whose sink is full: the pipe holds bytes.
struct Blocked {
  Pair pair;
  PipePool pool{4};
  SplicePump pump;
  std::vector<std::uint8_t> data;
  std::size_t sent = 0;
  explicit Blocked(std::uint32_t seed) : data(sluice::test::pattern(32 * 1024 * 1024, seed)) {
    REQUIRE(pair.fill_until_blocked(pump, pool, data, sent) == SplicePump::Outcome::sink_blocked);
  }
};

}  // namespace

TEST_CASE("splice pump: bytes move through a pooled pipe, which goes back once empty") {
  Pair pair;
  PipePool pool(4);
  SplicePump pump;
  const auto data = sluice::test::pattern(100 * 1000, 1);
  REQUIRE(sluice::test::write_some(pair.source_peer, data.data(), data.size()) == data.size());
  std::vector<std::uint8_t> got;
  std::size_t in = 0;
  while (in < data.size()) {  // loopback delivers at once; a few rounds at most
    const SplicePump::Result result = pump.pump(pair.source, pair.sink, pool, INT_MAX);
    REQUIRE(result.outcome == SplicePump::Outcome::idle);
    CHECK(result.bytes_in == result.bytes_out);
    in += result.bytes_in;
    pair.read_all(got);
  }
  pair.read_all(got);
  CHECK((got == data));
  CHECK(pump.buffered_bytes() == 0);
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 1);
}

TEST_CASE("splice pump: a blocked sink keeps the bytes in the pipe until drain(), FIN is source_eof") {
  Blocked blocked(2);
  auto& [pair, pool, pump, data, sent] = blocked;
  SplicePump::Result result;
  CHECK(pump.buffered_bytes() > 0);
  CHECK(pump.buffered_bytes() <= PipePool::kCapacityBytes);
  CHECK(pool.in_use() == 1);

  std::vector<std::uint8_t> got;
  bool shut = false;
  for (int i = 0; i < 100000; ++i) {
    pair.read_all(got);
    if (pump.buffered_bytes() > 0) {
      result = pump.drain(pair.sink, pool);
    } else {
      sent += sluice::test::write_some(pair.source_peer, data.data() + sent, data.size() - sent);
      if (sent == data.size() && !shut) shut = ::shutdown(pair.source_peer, SHUT_WR) == 0;
      result = pump.pump(pair.source, pair.sink, pool, INT_MAX);
    }
    if (result.outcome == SplicePump::Outcome::source_eof) break;
    REQUIRE((result.outcome == SplicePump::Outcome::idle || result.outcome == SplicePump::Outcome::sink_blocked));
  }
  REQUIRE(result.outcome == SplicePump::Outcome::source_eof);
  pair.read_all(got);
  CHECK(got.size() == data.size());
  CHECK((got == data));
  CHECK(pool.in_use() == 0);
}

TEST_CASE("splice pump: copy_out reads the pipe's bytes, a pipe with bytes left is closed at release") {
  Blocked blocked(4);
  auto& [pair, pool, pump, data, sent] = blocked;
  const std::size_t held = pump.buffered_bytes();
  REQUIRE(held > 10);
  char out[10];
  CHECK(pump.copy_out(out, sizeof out, pool) == sizeof out);
  CHECK(pump.buffered_bytes() == held - sizeof out);
  const std::size_t free_before = pool.free_count();
  pump.release(pool);  // bytes left: discarded, not given back for reuse
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == free_before);
  CHECK(pump.buffered_bytes() == 0);
}

TEST_CASE("splice pump: no pipe below the descriptor ceiling is no_pipe, and nothing moves") {
  Pair pair;
  PipePool pool(4);
  SplicePump pump;
  REQUIRE(sluice::test::write_text(pair.source_peer, "x") == 1);
  const SplicePump::Result result = pump.pump(pair.source, pair.sink, pool, /*descriptor_ceiling=*/3);
  CHECK(result.outcome == SplicePump::Outcome::no_pipe);
  CHECK(result.bytes_in == 0);
  CHECK(pool.in_use() == 0);
}
