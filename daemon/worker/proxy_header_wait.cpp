#include "sluice/worker/proxy_header_wait.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <utility>

namespace sluice {

bool ProxyHeaderWait::start(uv_loop_t* loop, Millis timeout, int& error) {
  error = readable_.init(loop, this, uv_poll_init, fd_);
  if (error == 0) {
    error = uv_poll_start(readable_.get(), UV_READABLE,
                          [](uv_poll_t* poll, int, int) { owner<ProxyHeaderWait>(poll)->on_readable(); });
  }
  if (error == 0) error = deadline_.init(loop, this, uv_timer_init);
  if (error == 0) {
    error = uv_timer_start(
        deadline_.get(),
        [](uv_timer_t* timer) {
          owner<ProxyHeaderWait>(timer)->fail("no complete PROXY header within accept_proxy_timeout");
        },
        static_cast<std::uint64_t>(timeout.count()), 0);
  }
  if (error != 0) stop();
  return error == 0;
}

void ProxyHeaderWait::stop() {
  // Closing the poll takes the socket out of epoll at once: libuv may take it up again at once.
  readable_.close();
  deadline_.close();
}

void ProxyHeaderWait::abandon() {
  stop();
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void ProxyHeaderWait::fail(const char* why) {
  stop();
  const int fd = std::exchange(fd_, -1);
  events_.proxy_header_failed(*this, fd, why);  // may free this
}

void ProxyHeaderWait::on_readable() {
  // Peeked, so that bytes past the header stay in the socket for the session.
  const ssize_t peeked = ::recv(fd_, buffer_.data() + taken_, buffer_.size() - taken_, MSG_PEEK);
  if (peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (peeked <= 0) return fail(peeked == 0 ? "closed before a complete PROXY header" : "reset before a PROXY header");
  const std::size_t seen = taken_ + static_cast<std::size_t>(peeked);
  const proxy_protocol::Parsed parsed = proxy_protocol::parse(std::string_view(buffer_.data(), seen));
  if (parsed.status == proxy_protocol::Status::invalid) return fail(parsed.error);
  // need_more: every byte seen may be the header's, so all are taken; done: exactly the header's.
  const std::size_t take = (parsed.status == proxy_protocol::Status::done ? parsed.length : seen) - taken_;
  const ssize_t took = ::recv(fd_, buffer_.data() + taken_, take, 0);
  if (took != static_cast<ssize_t>(take)) return fail("reset in its PROXY header");
  taken_ += take;
  if (parsed.status == proxy_protocol::Status::need_more) return;
  stop();
  events_.proxy_header_received(*this, std::exchange(fd_, -1), parsed);  // may free this
}

}  // namespace sluice
