#pragma once
// A TCP client for the tests. Every operation is bounded by a timeout (poll-based, non-blocking socket).

#include <cstddef>
#include <string>
#include <string_view>

#include "net.hpp"

namespace sluice::it {

/// How a read sequence ended.
enum class End { eof, reset, timeout, error };
const char* to_string(End end);

struct ReadResult {
  std::string data;      // everything read before the end
  End end = End::timeout;
  int error = 0;         // errno when end is reset or error
};

/// Socket options applied before the connect.
struct ConnectOptions {
  std::string source_host{};  // bind to this IP literal first (e.g. 127.0.0.2); empty: the kernel's choice
  int receive_buffer = 0;     // SO_RCVBUF in bytes (set before connect, so the window stays small); 0: default
};

class Client {
 public:
  /// Connects within `timeout`; throws std::runtime_error on failure.
  static Client connect(const Address& address, Millis timeout = 2s);
  /// Connects within `timeout`. Returns 0, or the errno of the failure (ETIMEDOUT when it timed out).
  static int try_connect(const Address& address, Millis timeout, Client& out);
  /// try_connect with socket options applied before connecting.
  static int try_connect(const Address& address, Millis timeout, Client& out, const ConnectOptions& options);
  /// connect with socket options; throws std::runtime_error on failure.
  static Client connect(const Address& address, const ConnectOptions& options, Millis timeout = 2s);

  Client() = default;
  Client(Client&&) = default;
  Client& operator=(Client&&) = default;

  /// Sends every byte; throws on error or when the timeout passes.
  void send_all(std::string_view data, Millis timeout = 5s);
  /// Reads exactly `size` bytes; throws on EOF, error or timeout.
  std::string read_exact(std::size_t size, Millis timeout = 2s);
  /// Reads one line up to and without its '\n' (reading byte by byte, so nothing after it is consumed).
  std::string read_line(Millis timeout = 2s);
  /// Reads until EOF, a reset, an error or the timeout.
  ReadResult read_until_end(Millis timeout = 2s);

  void shutdown_write();
  /// SO_LINGER {1, 0} and close: the peer sees a reset.
  void close_with_reset();
  void close() { fd_.reset(); }
  int fd() const { return fd_.get(); }

 private:
  explicit Client(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace sluice::it
