#include "net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice::it {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int Address::family() const { return host.find(':') == std::string::npos ? AF_INET : AF_INET6; }

std::string Address::to_string() const {
  if (family() == AF_INET6) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

socklen_t Address::to_sockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof out);
  if (family() == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1)
      throw std::runtime_error("not an IPv4 literal: " + host);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1)
    throw std::runtime_error("not an IPv6 literal: " + host);
  return sizeof(sockaddr_in6);
}

Address Address::loopback(int family, std::uint16_t port) {
  return Address{family == AF_INET6 ? "::1" : "127.0.0.1", port};
}

Address Address::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) throw std::runtime_error("bad address: " + std::string(text));
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw std::runtime_error("bad address: " + std::string(text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos)
    throw std::runtime_error("bad address: " + std::string(text));
  const unsigned long value = std::stoul(std::string(port));
  if (value > 65535) throw std::runtime_error("bad port: " + std::string(text));
  Address address{std::string(host), static_cast<std::uint16_t>(value)};
  sockaddr_storage check;
  address.to_sockaddr(check);  // throws unless host is an IP literal
  return address;
}

Address Address::from_sockaddr(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return Address{text, ntohs(in->sin_port)};
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  return Address{text, ntohs(in6->sin6_port)};
}

Fd bind_tcp_socket(const Address& address) {
  Fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_errno("socket", errno);
  sockaddr_storage storage;
  const socklen_t length = address.to_sockaddr(storage);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0)
    throw_errno("bind " + address.to_string(), errno);
  return fd;
}

Address local_address(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0)
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
