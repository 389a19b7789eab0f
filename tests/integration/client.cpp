#include "client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace sluice::it {

const char* to_string(End end) {
  switch (end) {
    case End::eof: return "eof";
    case End::reset: return "reset";
    case End::timeout: return "timeout";
    case End::error: return "error";
  }
  return "?";
}

int Client::try_connect(const Address& address, Millis timeout, Client& out) {
  return try_connect(address, timeout, out, ConnectOptions{});
}

int Client::try_connect(const Address& address, Millis timeout, Client& out, const ConnectOptions& options) {
  const auto deadline = Clock::now() + timeout;
  Fd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno;
  if (options.receive_buffer > 0 &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof options.receive_buffer) != 0)
    return errno;
  if (!options.source_host.empty()) {
    sockaddr_storage source;
    const socklen_t source_length = Address{options.source_host, 0}.to_sockaddr(source);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&source), source_length) != 0) return errno;
  }
  sockaddr_storage storage;
  const socklen_t length = address.to_sockaddr(storage);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    if (errno != EINPROGRESS) return errno;
    if (poll_until(fd.get(), POLLOUT, deadline) == 0) return ETIMEDOUT;
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return error;
  }
  out = Client(std::move(fd));
  return 0;
}

Client Client::connect(const Address& address, Millis timeout) {
  Client client;
  if (const int error = try_connect(address, timeout, client); error != 0)
    throw_errno("connect " + address.to_string(), error);
  return client;
}

Client Client::connect(const Address& address, const ConnectOptions& options, Millis timeout) {
  Client client;
  if (const int error = try_connect(address, timeout, client, options); error != 0)
    throw_errno("connect " + address.to_string() +
                    (options.source_host.empty() ? std::string() : " from " + options.source_host),
                error);
  return client;
}

void Client::send_all(std::string_view data, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EAGAIN || errno == EINTR) {
      if (poll_until(fd_.get(), POLLOUT, deadline) == 0)
        throw std::runtime_error("send: timed out with " + std::to_string(data.size()) + " bytes left");
    } else {
      throw_errno("send", errno);
    }
  }
}

std::string Client::read_exact(std::size_t size, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string data(size, '\0');
  std::size_t have = 0;
  while (have < size) {
    const ssize_t n = ::recv(fd_.get(), data.data() + have, size - have, 0);
    if (n > 0) {
      have += static_cast<std::size_t>(n);
    } else if (n == 0) {
      throw std::runtime_error("read_exact: EOF after " + std::to_string(have) + " of " +
                               std::to_string(size) + " bytes");
    } else if (errno == EAGAIN || errno == EINTR) {
      if (poll_until(fd_.get(), POLLIN, deadline) == 0)
        throw std::runtime_error("read_exact: timed out after " + std::to_string(have) + " of " +
                                 std::to_string(size) + " bytes");
    } else {
      throw_errno("read_exact", errno);
    }
  }
  return data;
}

std::string Client::read_line(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string line;
  for (;;) {
    char c;
    const ssize_t n = ::recv(fd_.get(), &c, 1, 0);
    if (n == 1) {
      if (c == '\n') return line;
      line += c;
    } else if (n == 0) {
      throw std::runtime_error("read_line: EOF after \"" + line + "\"");
    } else if (errno == EAGAIN || errno == EINTR) {
      if (poll_until(fd_.get(), POLLIN, deadline) == 0)
        throw std::runtime_error("read_line: timed out after \"" + line + "\"");
    } else {
      throw_errno("read_line", errno);
    }
  }
}

ReadResult Client::read_until_end(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  ReadResult result;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      result.data.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      result.end = End::eof;
      return result;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (poll_until(fd_.get(), POLLIN, deadline) == 0) {
        result.end = End::timeout;
        return result;
      }
    } else {
      result.error = errno;
      result.end = errno == ECONNRESET ? End::reset : End::error;
      return result;
    }
  }
}

void Client::shutdown_write() {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) throw_errno("shutdown", errno);
}

void Client::close_with_reset() { it::close_with_reset(fd_); }

}  // namespace sluice::it
