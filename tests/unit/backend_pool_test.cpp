// BackendConnection and BackendPool: a connection stays read across its hand-overs to the pool
// and back (no libuv read stop and start), yet no byte is lost or taken for the pool's while a
// user has it: bytes that come before the user reads wait in the socket.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "sluice/balancing/backend.hpp"
#include "sluice/proxy/backend_pool.hpp"
#include "socket_pairs.hpp"

namespace {

struct FakeUser final : sluice::BackendConnection::User {
  char buffer[64]{};
  std::string received;
  bool eof = false;
  int closed = 0;
  void backend_connection_closed(sluice::BackendConnection&) override { ++closed; }
  uv_buf_t backend_read_buffer(sluice::BackendConnection&) override { return uv_buf_init(buffer, sizeof buffer); }
  void backend_read(sluice::BackendConnection&, ssize_t nread) override {
    if (nread > 0) received.append(buffer, static_cast<std::size_t>(nread));
    if (nread == UV_EOF) eof = true;
  }
};

// A listening loopback socket standing in for the backend.
struct Listener {
  int fd = -1;
  sockaddr_in address{};
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    REQUIRE(fd >= 0);
    REQUIRE(bind(fd, sluice::as_sockaddr(&address), sizeof address) == 0);
    REQUIRE(listen(fd, 4) == 0);
    REQUIRE(getsockname(fd, sluice::as_sockaddr(&address), &length) == 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  ~Listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("BackendPool: bytes sent while a taken connection is not read yet reach its user, and an idle one drops on EOF") {
  sluice::test::TestLoop loop;
  Listener listener;
  sluice::Backend backend(sluice::BackendConfig{"b", {}, "", 1, 0}, 0, sluice::HealthCheckConfig{});
  std::memcpy(&backend.address, &listener.address, sizeof listener.address);
  sluice::BackendPool pool(loop.get());
  FakeUser user;

  int error = 0;
  static int connected = 0;
  connected = 0;
  sluice::BackendConnection* connection = sluice::BackendConnection::connect(
      loop.get(), backend, user, [](sluice::BackendConnection&, int status) { connected = status == 0 ? 1 : -1; }, error);
  REQUIRE(connection != nullptr);
  int peer = -1;
  REQUIRE(loop.run_until([&] {
    if (peer < 0) peer = accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return connected != 0 && peer >= 0;
  }));
  REQUIRE(connected == 1);

  // The user reads its response, then gives the connection to the pool.
  REQUIRE(connection->read(true) == 0);
  sluice::test::write_text(peer, "one");
  CHECK(loop.run_until([&] { return user.received == "one"; }));
  pool.put(connection, 16, sluice::Millis(60000));
  CHECK(pool.idle_count() == 1);

  // Taken again: the backend's next bytes come before the user reads. They wait for it, whole.
  user.received.clear();
  REQUIRE(pool.take(backend, user) == connection);
  CHECK(pool.idle_count() == 0);
  sluice::test::write_text(peer, "two");
  loop.turn(20);
  CHECK(user.received.empty());
  CHECK(user.closed == 0);
  REQUIRE(connection->read(true) == 0);
  CHECK(loop.run_until([&] { return user.received == "two"; }));

  // Idle again: the backend's EOF drops it from the pool and closes it (the user no longer hears).
  pool.put(connection, 16, sluice::Millis(60000));
  REQUIRE(pool.idle_count() == 1);
  ::close(peer);
  CHECK(loop.run_until([&] { return pool.idle_count() == 0 && backend.stats.pool_open == 0; }));
  CHECK_FALSE(user.eof);
  CHECK(user.closed == 0);
  pool.close_all();
}
