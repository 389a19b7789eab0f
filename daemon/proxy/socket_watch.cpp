#include "sluice/proxy/socket_watch.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace sluice {

int descriptor_of(uv_stream_t* stream) {
  uv_os_fd_t fd;
  return uv_fileno(as_handle(stream), &fd) == 0 ? fd : -1;
}

bool was_reset(uv_stream_t* stream) {
  const int fd = descriptor_of(stream);
  if (fd < 0) return false;
  int error = 0;
  socklen_t length = sizeof error;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == ECONNRESET;
}

void close_socket(uv_tcp_t* socket, bool reset, void* owner, uv_close_cb on_closed) {
  if (uv_is_closing(as_handle(socket))) return;
  socket->data = owner;
  if (reset && uv_tcp_close_reset(socket, on_closed) == 0) return;
  uv_close(as_handle(socket), on_closed);
}

bool SocketWatch::open(uv_loop_t* loop, uv_stream_t* socket, int events, uv_poll_cb on_event, void* owner,
                       int descriptor_ceiling) {
  close();
  const int socket_fd = descriptor_of(socket);
  if (socket_fd < 0) return false;
  fd_ = fcntl(socket_fd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0 || fd_ >= descriptor_ceiling || poll_.init(loop, owner, uv_poll_init, fd_) != 0) {
    close();
    return false;
  }
  if (int rc = uv_poll_start(poll_.get(), events, on_event); rc != 0) {
    spdlog::debug("socket watch not started: {}", uv_err_name(rc));
    close();
    return false;
  }
  return true;
}

void SocketWatch::close() {
  // uv_close stops the poll at once (epoll forgets the descriptor), so the duplicate may go now.
  poll_.close();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace sluice
