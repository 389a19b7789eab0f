// The pipe pool behind splice(2): pipes are reused while empty, the free list is bounded, a pipe
// with bytes left is closed rather than reused, and pipes never take the descriptors kept for sockets.

#include "sluice/proxy/pipe_pool.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <vector>

using sluice::KernelPipe;
using sluice::PipePool;

namespace {

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

int flags_of(int fd) { return fcntl(fd, F_GETFL); }

int bytes_in(const KernelPipe* pipe) {
  int bytes = -1;
  ioctl(pipe->read_fd, FIONREAD, &bytes);
  return bytes;
}

}  // namespace

TEST_CASE("pipe pool: a taken pipe is non-blocking, close-on-exec and works, and is reused once given back") {
  PipePool pool(4);
  KernelPipe* pipe = pool.take(INT_MAX);
  REQUIRE(pipe != nullptr);
  CHECK(pool.in_use() == 1);
  CHECK((flags_of(pipe->read_fd) & O_NONBLOCK) != 0);
  CHECK((flags_of(pipe->write_fd) & O_NONBLOCK) != 0);
  CHECK((fcntl(pipe->read_fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(pipe->write_fd, F_GETFD) & FD_CLOEXEC) != 0);
  // Made larger than the kernel's 64 KiB (tests run as root, so no per-user limit applies).
  CHECK(pipe->capacity_bytes == PipePool::kCapacityBytes);
  CHECK(fcntl(pipe->write_fd, F_GETPIPE_SZ) == static_cast<int>(PipePool::kCapacityBytes));
  REQUIRE(::write(pipe->write_fd, "abc", 3) == 3);
  char out[3];
  REQUIRE(::read(pipe->read_fd, out, 3) == 3);
  const int read_fd = pipe->read_fd;
  const int write_fd = pipe->write_fd;

  pool.give_back(pipe);
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 1);
  CHECK(is_open(read_fd));  // kept for reuse
  KernelPipe* again = pool.take(INT_MAX);
  CHECK(again == pipe);
  CHECK(again->read_fd == read_fd);
  CHECK(again->write_fd == write_fd);
  CHECK(pool.free_count() == 0);
  pool.give_back(again);
}

TEST_CASE("pipe pool: at most max_free pipes are kept, the rest are closed when given back") {
  PipePool pool(2);
  std::vector<KernelPipe*> pipes;
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) {
    pipes.push_back(pool.take(INT_MAX));
    REQUIRE(pipes.back() != nullptr);
    fds.push_back(pipes.back()->read_fd);
    fds.push_back(pipes.back()->write_fd);
  }
  CHECK(pool.in_use() == 5);
  for (KernelPipe* pipe : pipes) pool.give_back(pipe);
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 2);
  // The first two given back are kept, the other three closed (their descriptors with them).
  for (std::size_t i = 0; i < fds.size(); ++i) {
    CAPTURE(i);
    CHECK(is_open(fds[i]) == (i < 4));
  }
}

TEST_CASE("pipe pool: a pipe with bytes left is closed, never handed to anyone again") {
  PipePool pool(4);
  KernelPipe* pipe = pool.take(INT_MAX);
  REQUIRE(pipe != nullptr);
  REQUIRE(::write(pipe->write_fd, "left over", 9) == 9);
  const int read_fd = pipe->read_fd;
  const int write_fd = pipe->write_fd;
  pool.discard(pipe);
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 0);
  CHECK_FALSE(is_open(read_fd));
  CHECK_FALSE(is_open(write_fd));

  KernelPipe* fresh = pool.take(INT_MAX);
  REQUIRE(fresh != nullptr);
  CHECK(bytes_in(fresh) == 0);
  pool.give_back(fresh);
}

TEST_CASE("pipe pool: no new pipe whose descriptors would reach the ceiling, and nothing leaks") {
  PipePool pool(4);
  // The two descriptors a new pipe gets: the lowest free ones.
  const int first = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int second = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(first >= 0);
  REQUIRE(second > first);
  ::close(first);
  ::close(second);
  // Its second descriptor would be at the ceiling: refused with EMFILE, both closed again.
  errno = 0;
  CHECK(pool.take(second) == nullptr);
  CHECK(errno == EMFILE);
  CHECK(pool.in_use() == 0);
  CHECK_FALSE(is_open(first));
  CHECK_FALSE(is_open(second));
  // Just below it, a pipe is made; a kept one is reused whatever the ceiling.
  KernelPipe* pipe = pool.take(second + 1);
  REQUIRE(pipe != nullptr);
  CHECK(pipe->read_fd == first);
  CHECK(pipe->write_fd == second);
  pool.give_back(pipe);
  CHECK(pool.take(0) == pipe);
  pool.give_back(pipe);
}
