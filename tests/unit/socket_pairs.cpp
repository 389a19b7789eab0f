#include "socket_pairs.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

namespace sluice::test {

TestLoop::TestLoop() {
  std::signal(SIGPIPE, SIG_IGN);  // as the daemon: a write to a reset socket fails with EPIPE
  REQUIRE(uv_loop_init(&loop_) == 0);
  REQUIRE(ticker_.init(&loop_, this, uv_timer_init) == 0);
  REQUIRE(uv_timer_start(ticker_.get(), [](uv_timer_t*) {}, 1, 1) == 0);
}

TestLoop::~TestLoop() {
  ticker_.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop_) == 0);
}

bool TestLoop::run_until(const std::function<bool()>& done, const std::function<void()>& step,
                         std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(bound);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (step) step();
    uv_run(&loop_, UV_RUN_ONCE);
  }
  return true;
}

void TestLoop::turn(int turns) {
  for (int i = 0; i < turns; ++i) uv_run(&loop_, UV_RUN_ONCE);
}

StreamEnd::~StreamEnd() {
  if (peer >= 0) ::close(peer);
}

namespace {

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

bool tcp_pair(int& ours, int& theirs) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, as_sockaddr(&address), sizeof address) != 0 || listen(listener, 1) != 0 ||
      getsockname(listener, as_sockaddr(&address), &length) != 0) {
    if (listener >= 0) ::close(listener);
    return false;
  }
  theirs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool connected = theirs >= 0 && connect(theirs, as_sockaddr(&address), sizeof address) == 0;
  ours = connected ? accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  ::close(listener);
  return ours >= 0;
}

bool open_pair(uv_loop_t* loop, Kind kind, StreamEnd& end) {
  int ours = -1;
  int theirs = -1;
  if (kind == Kind::tcp) {
    if (!tcp_pair(ours, theirs)) FAIL("no loopback TCP pair: " << errno);
  } else {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) FAIL("no socketpair: " << errno);
    ours = fds[0];
    theirs = fds[1];
  }
  set_nonblocking(ours);
  set_nonblocking(theirs);
  end.peer = theirs;
  if (kind == Kind::tcp) {
    REQUIRE(end.tcp.init(loop, &end, uv_tcp_init) == 0);
    REQUIRE(uv_tcp_open(end.tcp.get(), ours) == 0);
    end.stream = as_stream(end.tcp.get());
  } else {
    REQUIRE(end.pipe.init(loop, &end, uv_pipe_init, 0) == 0);
    REQUIRE(uv_pipe_open(end.pipe.get(), ours) == 0);
    end.stream = as_stream(end.pipe.get());
  }
  return true;
}

std::size_t write_some(int fd, const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::size_t write_text(int fd, std::string_view text) {
  const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

void read_some(int fd, std::vector<std::uint8_t>& out, bool& eof, int& error, std::size_t limit) {
  std::uint8_t buffer[65536];
  while (limit > 0) {
    const ssize_t n = ::read(fd, buffer, std::min(sizeof buffer, limit));
    if (n > 0) {
      out.insert(out.end(), buffer, buffer + n);
      limit -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) eof = true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) error = errno;
    return;
  }
}

std::vector<std::uint8_t> pattern(std::size_t size, std::uint32_t seed) {
  std::vector<std::uint8_t> bytes(size);
  std::uint32_t state = seed;
  for (auto& byte : bytes) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<std::uint8_t>(state >> 24);
  }
  return bytes;
}

void close_with_reset(int& fd) {
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd);
  fd = -1;
}

}  // namespace sluice::test
