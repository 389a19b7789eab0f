#include "sluice/proxy/client_side.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include <spdlog/spdlog.h>

namespace sluice {

int ClientSide::open(uv_loop_t* loop, int fd) {
  if (int rc = uv_tcp_init(loop, &socket_); rc != 0) {
    ::close(fd);
    return rc;
  }
  open_ = true;
  if (int rc = uv_tcp_open(&socket_, fd); rc != 0) {
    ::close(fd);
    return rc;
  }
  if (int rc = uv_tcp_nodelay(&socket_, 1); rc != 0) spdlog::debug("client nodelay failed: {}", uv_err_name(rc));
  return 0;
}

namespace {

// Fills `address` from the socket (getpeername or getsockname) unless it is known already.
using AskAddress = int (*)(const uv_tcp_t*, sockaddr*, int*);
const sockaddr* known_or_asked(sockaddr_in6& address, const uv_tcp_t& socket, bool open, AskAddress ask) {
  if (address.sin6_family == AF_UNSPEC && open) {
    int length = sizeof address;
    if (int rc = ask(&socket, as_sockaddr(&address), &length); rc != 0) {
      spdlog::debug("client address not known: {}", uv_err_name(rc));
    }
  }
  return as_sockaddr(&address);
}

}  // namespace

const sockaddr* ClientSide::address() const {
  return known_or_asked(address_, socket_, open_, uv_tcp_getpeername);
}

const sockaddr* ClientSide::local_address() const {
  return known_or_asked(local_address_, socket_, open_, uv_tcp_getsockname);
}

void ClientSide::set_addresses(const sockaddr_storage& client, const sockaddr_storage& local) {
  std::memcpy(&address_, &client, sizeof address_);
  std::memcpy(&local_address_, &local, sizeof local_address_);
}

void ClientSide::watch_for_reset(uv_loop_t* loop, uv_poll_cb on_event, void* owner) {
  if (reset_watch_.is_open()) return;
  // Only errors are of interest: epoll reports EPOLLERR/EPOLLHUP whatever was asked, and a reset
  // raises them. So no descriptor ceiling: a queued client's reset must be seen.
  reset_watch_.open(loop, stream(), UV_PRIORITIZED, on_event, owner, std::numeric_limits<int>::max());
}

bool ClientSide::has_error() const {
  int error = 0;
  socklen_t length = sizeof error;
  getsockopt(reset_watch_.descriptor(), SOL_SOCKET, SO_ERROR, &error, &length);
  return error != 0;
}

void ClientSide::close(bool reset, void* owner, uv_close_cb on_closed) {
  stop_watching();
  if (open_) close_socket(&socket_, reset, owner, on_closed);
}

}  // namespace sluice
