#include "net.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice::it {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// Text and socket addresses through the daemon's one address helper (sluice/net/sockaddr_text.hpp).
int Address::family() const { return host.find(':') == std::string::npos ? AF_INET : AF_INET6; }

std::string Address::to_string() const { return Endpoint{host, port}.to_string(); }

socklen_t Address::to_sockaddr(sockaddr_storage& out) const {
  const auto address = numeric_address(Endpoint{host, port});
  if (!address) throw std::runtime_error("not an IP literal: " + host);
  out = *address;
  return sockaddr_length(out);
}

Address Address::loopback(int family, std::uint16_t port) {
  return Address{family == AF_INET6 ? "::1" : "127.0.0.1", port};
}

Address Address::parse(std::string_view text) {
  std::string why;
  const auto address = parse_ip_address(text, &why);
  if (!address) throw std::runtime_error("bad address " + std::string(text) + ": " + why);
  return from_sockaddr(*address);
}

Address Address::from_sockaddr(const sockaddr_storage& storage) {
  const auto endpoint = parse_endpoint(sockaddr_to_string(storage));
  if (!endpoint) throw std::runtime_error("not an IPv4 or IPv6 socket address");
  return Address{endpoint->host, endpoint->port};
}

Fd bind_tcp_socket(const Address& address) {
  Fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_errno("socket", errno);
  sockaddr_storage storage;
  const socklen_t length = address.to_sockaddr(storage);
  if (::bind(fd.get(), as_sockaddr(&storage), length) != 0)
    throw_errno("bind " + address.to_string(), errno);
  return fd;
}

Address local_address(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, as_sockaddr(&storage), &length) != 0)
    throw_errno("getsockname", errno);
  return Address::from_sockaddr(storage);
}

short poll_until(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, left > 0 ? static_cast<int>(left) : 0);
    if (n > 0) return p.revents;
    if (n == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;
    }
    if (errno != EINTR) throw_errno("poll", errno);
  }
}

void close_with_reset(Fd& fd) {
  const linger option{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &option, sizeof option);
  fd.reset();
}

std::string errno_text(int error) {
  const char* name = strerrorname_np(error);
  return std::string(name ? name : "E?") + " (" + std::strerror(error) + ")";
}

void throw_errno(const std::string& what, int error) {
  throw std::runtime_error(what + ": " + errno_text(error));
}

}  // namespace sluice::it
