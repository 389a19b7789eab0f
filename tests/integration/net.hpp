#pragma once
// Socket basics for the integration tests: an owning fd, loopback addresses, deadlines.
// Every socket made here is close-on-exec, so the daemon under test never inherits one.

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::it {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

/// Milliseconds elapsed since `start`.
inline long long elapsed_ms(Clock::time_point start) {
  return std::chrono::duration_cast<Millis>(Clock::now() - start).count();
}

/// Owns one file descriptor; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/// An IP literal and a port: 127.0.0.1 and ::1, or the addresses of network namespaces (netns.hpp).
struct Address {
  std::string host{};      // IP literal, IPv6 without brackets
  std::uint16_t port = 0;

  int family() const;                 // AF_INET or AF_INET6
  std::string to_string() const;      // "127.0.0.1:80", "[::1]:80"
  socklen_t to_sockaddr(sockaddr_storage& out) const;  // throws on a bad literal

  static Address loopback(int family, std::uint16_t port = 0);
  /// Parses "host:port" or "[v6]:port"; throws std::runtime_error on anything else.
  static Address parse(std::string_view text);
  static Address from_sockaddr(const sockaddr_storage& storage);
};

/// A TCP socket (close-on-exec, non-blocking) bound to `address`; throws on failure.
Fd bind_tcp_socket(const Address& address);

/// The address a socket is bound to.
Address local_address(int fd);

/// Waits until `fd` reports one of `events` or the deadline passes. Returns revents (0 on timeout).
short poll_until(int fd, short events, Clock::time_point deadline);

/// Sets SO_LINGER {1, 0} and closes: the peer receives a RST instead of a FIN.
void close_with_reset(Fd& fd);

/// "ECONNRESET (Connection reset by peer)".
std::string errno_text(int error);

/// "<what>: <errno text>" as a std::runtime_error.
[[noreturn]] void throw_errno(const std::string& what, int error);

}  // namespace sluice::it
