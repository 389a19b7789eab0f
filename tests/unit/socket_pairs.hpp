#pragma once
// For the unit tests of the data path: a real uv loop, and connected socket pairs (AF_UNIX, or
// loopback TCP where splice or a reset needs TCP) whose one end is a libuv stream and the other a
// plain non-blocking descriptor the test reads and writes.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "sluice/uv/handle.hpp"
#include "test_support.hpp"

namespace sluice::test {

/// A loop that the test turns until a condition holds; a 1 ms ticker keeps each turn short.
class TestLoop {
 public:
  TestLoop();
  ~TestLoop();  // runs the loop until every closed handle is freed, then closes it
  uv_loop_t* get() { return &loop_; }
  /// Turns the loop (and calls `step` each turn) until `done`; false after `bound` (scaled).
  bool run_until(const std::function<bool()>& done, const std::function<void()>& step = {},
                 std::chrono::milliseconds bound = std::chrono::milliseconds(10000));
  /// Turns the loop `turns` times.
  void turn(int turns = 1);

 private:
  uv_loop_t loop_;
  Handle<uv_timer_t> ticker_;
};

/// One end a libuv stream, the other a plain descriptor.
struct StreamEnd {
  Handle<uv_tcp_t> tcp;
  Handle<uv_pipe_t> pipe;
  uv_stream_t* stream = nullptr;
  int peer = -1;  // the test's end
  ~StreamEnd();
};

enum class Kind { unix_socket, tcp };
/// A connected pair: `end.stream` on `loop`, `end.peer` non-blocking. False (and FAIL) if not.
bool open_pair(uv_loop_t* loop, Kind kind, StreamEnd& end);

/// A connected loopback TCP pair of plain descriptors (blocking).
bool tcp_pair(int& ours, int& theirs);
/// Writes what the descriptor takes now; returns the count (0 when full).
std::size_t write_some(int fd, const std::uint8_t* data, std::size_t size);
std::size_t write_text(int fd, std::string_view text);
/// Reads what is there (at most `limit` bytes) into `out`; sets `eof` at EOF and `error` on a failure.
void read_some(int fd, std::vector<std::uint8_t>& out, bool& eof, int& error, std::size_t limit = SIZE_MAX);
/// Deterministic bytes: `size` of them from `seed`.
std::vector<std::uint8_t> pattern(std::size_t size, std::uint32_t seed);
/// Closes `fd` with a RST (SO_LINGER 0).
void close_with_reset(int& fd);

}  // namespace sluice::test
