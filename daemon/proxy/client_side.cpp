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

const sockaddr* ClientSide::address() const {
  if (address_.sin6_family == AF_UNSPEC && open_) {
    int length = sizeof address_;
    if (int rc = uv_tcp_getpeername(&socket_, as_sockaddr(&address_), &length); rc != 0) {
      spdlog::debug("client getpeername failed: {}", uv_err_name(rc));
    }
  }
  return as_sockaddr(&address_);
}

const sockaddr* ClientSide::local_address() const {
  if (local_address_.sin6_family == AF_UNSPEC && open_) {
    int length = sizeof local_address_;
    if (int rc = uv_tcp_getsockname(&socket_, as_sockaddr(&local_address_), &length); rc != 0) {
      spdlog::debug("client getsockname failed: {}", uv_err_name(rc));
    }
  }
  return as_sockaddr(&local_address_);
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
