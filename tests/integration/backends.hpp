#pragma once
// Test backends: small TCP servers run by threads of the test process, bound to port 0 on
// 127.0.0.1 or ::1. Each one stops cleanly in its destructor: every wait inside a handler also
// watches the server's stop event, and every thread is joined.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client.hpp"
#include "net.hpp"

namespace sluice::it {

/// One accepted connection as a handler sees it. Blocking calls return early when the server stops.
class ServerConnection {
 public:
  ServerConnection(Fd fd, int stop_fd) : fd_(std::move(fd)), stop_fd_(stop_fd) {}

  /// >0: bytes read; 0: EOF; -1: error or server stopping (errno set, ECANCELED when stopping).
  ssize_t read_some(char* buffer, std::size_t size);
  /// False on error or when the server stops.
  bool write_all(std::string_view data);
  /// Reads and discards until EOF. How it ended: eof, reset or error (also when stopping).
  End drain(std::uint64_t* bytes = nullptr, int* error = nullptr);
  void shutdown_write();
  void reset() { close_with_reset(fd_); }
  int fd() const { return fd_.get(); }
  /// Readable once the server stops: for handlers that run their own poll loop on fd().
  int stop_fd() const { return stop_fd_; }

 private:
  bool wait(short events);  // false when stopping
  Fd fd_;
  int stop_fd_;
};

/// Accepts on a loopback port and runs `handler` on its own thread for each connection.
class TcpServer {
 public:
  using Handler = std::function<void(ServerConnection&)>;

  TcpServer(int family, Handler handler);
  /// Listening on `bind` (an IP literal and port; port 0 picks one), e.g. 127.0.0.3 for a DNS record.
  TcpServer(const Address& bind, Handler handler);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  const Address& address() const { return address_; }
  std::uint64_t accepted() const { return accepted_.load(); }

  /// Stops accepting, wakes every handler, joins every thread. Idempotent.
  void stop();

 private:
  struct Worker {
    std::thread thread;
    bool done = false;  // set under mutex_ when the handler returned
  };
  void accept_loop();
  void reap_locked();

  Handler handler_;
  Fd listen_fd_;
  Fd stop_fd_;  // eventfd: readable once stop() was called
  Address address_;
  std::atomic<std::uint64_t> accepted_{0};
  std::mutex mutex_;
  std::list<Worker> workers_;
  std::thread acceptor_;
  bool stopped_ = false;
};

/// Writes its name and "\n" to every connection, then closes it.
class NameServer {
 public:
  explicit NameServer(std::string name, int family = AF_INET);
  const std::string& name() const { return name_; }
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

 private:
  std::string name_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

/// Echoes every byte. Half-close aware: at the client's EOF it finishes writing, then shuts down its
/// write side.
class EchoServer {
 public:
  explicit EchoServer(int family = AF_INET);
  /// Listening on `bind` (see TcpServer).
  explicit EchoServer(const Address& bind);
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

 private:
  TcpServer server_;
};

/// Writes its name and "\n", then holds the connection open until the peer closes it or until
/// release_all(), which shuts down the write side of every held connection; a released
/// connection is closed once the peer's EOF arrives.
class HoldServer {
 public:
  explicit HoldServer(std::string name, int family = AF_INET);
  const std::string& name() const { return name_; }
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

  std::size_t open() const;
  /// Waits until exactly `count` connections are open.
  bool wait_open(std::size_t count, Millis timeout);
  void release_all();

 private:
  std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::set<int> open_fds_;
  TcpServer server_;
};

/// Reads until EOF, then answers `reply` and closes.
class ReplyAfterEofServer {
 public:
  explicit ReplyAfterEofServer(std::string reply, int family = AF_INET);
  const Address& address() const { return server_.address(); }

  /// Waits until a connection has read its EOF; returns everything it received before it.
  bool wait_request(std::string& request, Millis timeout);
  /// Waits until `count` connections have read their EOF; returns what each received, in the order
  /// their EOFs arrived.
  bool wait_requests(std::size_t count, Millis timeout, std::vector<std::string>& requests);

 private:
  std::string reply_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> requests_;
  TcpServer server_;
};

/// Reads `read_first` bytes, then closes with SO_LINGER {1, 0} so that the peer sees a reset.
class ResetServer {
 public:
  explicit ResetServer(std::size_t read_first, int family = AF_INET);
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

 private:
  std::size_t read_first_;
  TcpServer server_;
};

/// Reads and discards until the connection ends, and records how it ended.
class EndRecorderServer {
 public:
  struct Record {
    std::uint64_t bytes = 0;
    End end = End::error;
    int error = 0;
  };
  explicit EndRecorderServer(int family = AF_INET);
  const Address& address() const { return server_.address(); }

  /// Waits until at least `count` connections have ended; returns the first `count` records.
  bool wait_ended(std::size_t count, Millis timeout, std::vector<Record>& records);
  /// Waits until the connections together received at least `bytes`.
  bool wait_received(std::uint64_t bytes, Millis timeout);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t received_ = 0;
  std::vector<Record> records_;
  TcpServer server_;
};

/// A reserved port that refuses connections: the socket is bound but never listens, and stays open
/// so that no one else takes the port.
class RefusedPort {
 public:
  explicit RefusedPort(int family = AF_INET);
  const Address& address() const { return address_; }
  /// Frees the port for a server that the test starts there (the backend "coming back").
  void release() { fd_ = Fd(); }

 private:
  Fd fd_;
  Address address_;
};

/// A backend that never answers a SYN: it listens with a backlog of 0 and never accepts, and its
/// accept queue is filled by one completed connection from the test, so the kernel drops every
/// further SYN. verify() checks that a plain connect really times out.
class Blackhole {
 public:
  explicit Blackhole(int family = AF_INET);
  const Address& address() const { return address_; }
  /// True when a connect with `timeout` times out (ETIMEDOUT) rather than completes or fails.
  bool verify(Millis timeout = 300ms) const;

 private:
  Fd listen_fd_;
  Address address_;
  Client filler_;
};

}  // namespace sluice::it
