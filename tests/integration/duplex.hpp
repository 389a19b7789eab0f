#pragma once
// Traffic for the reliability tests: a two-way stream engine that both test clients and test
// backends run on a socket (each direction its own seeded stream, hashed on both ends), servers
// built on it, a streaming backend that counts what it could write, an epoll echo server for
// thousands of connections, and a few process-level helpers (fd limit, kernel socket queues).

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "client.hpp"
#include "data.hpp"
#include "net.hpp"

namespace sluice::it {

inline constexpr std::uint64_t kNoHold = std::numeric_limits<std::uint64_t>::max();

/// What one end of a two-way stream does.
struct DuplexPlan {
  std::uint64_t send_bytes = 0;  // ByteStream(seed) bytes to send, then shutdown(SHUT_WR)
  std::uint64_t seed = 0;
  /// No byte beyond the first `hold_until_peer_eof` is sent before the peer's EOF has been read
  /// (kNoHold: no hold). A way to order the two EOFs without sleeping.
  std::uint64_t hold_until_peer_eof = kNoHold;
  /// A slow reader: after each `read_burst_bytes` read, no read for `read_pause` (0: reads freely).
  std::size_t read_burst_bytes = 0;
  Millis read_pause{0};
  /// Fails when neither direction moves for this long.
  Millis stall_timeout{10s};
  /// SO_RCVBUF set on the socket first (0: the kernel's autotuning): a small one keeps the bytes of
  /// a slow reader in the sender (Sluice) rather than in this end's kernel.
  int receive_buffer = 0;
};

struct DuplexOutcome {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::string sent_sha;      // of the bytes sent
  std::string received_sha;  // of the bytes received
  /// Bytes this end had sent when it read the peer's EOF (kNoHold when it never did).
  std::uint64_t sent_at_peer_eof = kNoHold;
  std::string failure;  // empty: everything sent and shut down, and the peer's EOF read
};

/// Runs `plan` on a connected non-blocking socket: sends and receives at the same time (poll),
/// until both directions are done, an error, a stall, or `stop_fd` (when >= 0) turns readable.
DuplexOutcome run_duplex(int fd, const DuplexPlan& plan, int stop_fd = -1);

/// A backend that runs run_duplex on every connection with the plan `plan_for(index)` (index: the
/// connection's accept order, from 0), and records the outcomes.
class DuplexServer {
 public:
  using PlanFor = std::function<DuplexPlan(std::size_t index)>;
  explicit DuplexServer(PlanFor plan_for, int family = AF_INET);
  ~DuplexServer();
  DuplexServer(const DuplexServer&) = delete;
  DuplexServer& operator=(const DuplexServer&) = delete;

  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }
  /// Waits until `count` connections have finished; returns their outcomes in finishing order.
  bool wait_outcomes(std::size_t count, Millis timeout, std::vector<DuplexOutcome>& outcomes);

 private:
  PlanFor plan_for_;
  std::atomic<std::size_t> next_index_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<DuplexOutcome> outcomes_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

/// A backend that writes ByteStream(seed) to every connection as fast as the connection takes it,
/// never reading, and counts the bytes the kernel accepted (`written`: with a blocked send, this
/// stays put). Ends a connection after `limit` bytes (then closes it), with a reset after
/// `reset_after` bytes, or when a send fails (the peer reset or closed).
class StreamServer {
 public:
  struct Options {
    std::uint64_t seed = 1;
    std::uint64_t limit = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t reset_after = std::numeric_limits<std::uint64_t>::max();
    int send_buffer = 0;  // SO_SNDBUF on each accepted socket; 0: the kernel's autotuning
  };
  struct Record {
    std::uint64_t written = 0;
    int error = 0;  // errno of the failed send, 0 when it ended by limit or reset_after
  };
  explicit StreamServer(Options options, int family = AF_INET);
  ~StreamServer();
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;

  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }
  /// Bytes written so far, all connections together.
  std::uint64_t written() const { return written_.load(); }
  /// Waits until `count` connections have ended; returns the first `count` records.
  bool wait_ended(std::size_t count, Millis timeout, std::vector<Record>& records);

 private:
  Options options_;
  std::atomic<std::uint64_t> written_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Record> records_;
  TcpServer server_;
};

/// A backend that reads only what the test allows, and counts it: a slow reader taken to its limit,
/// so that where the bytes sit can be measured while none moves. After release() it reads freely
/// until the connection ends. For one connection at a time.
class MeteredSink {
 public:
  explicit MeteredSink(int family = AF_INET);
  ~MeteredSink();
  MeteredSink(const MeteredSink&) = delete;
  MeteredSink& operator=(const MeteredSink&) = delete;

  const Address& address() const { return server_.address(); }
  /// Lets the connection read `bytes` more than it has read so far.
  void allow(std::uint64_t bytes);
  /// Waits until the connection has read `total` bytes in all (false at the deadline).
  bool wait_read(std::uint64_t total, Millis timeout);
  /// Reads freely from now on.
  void release();
  /// Bytes read so far.
  std::uint64_t read() const;
  struct Record {
    std::uint64_t bytes = 0;
    std::string sha;  // SHA-256 of the bytes read
    End end = End::error;
  };
  /// Waits until the connection has ended (EOF, reset or error).
  bool wait_ended(Millis timeout, Record& record);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t allowed_ = 0;
  std::uint64_t read_ = 0;
  bool released_ = false;
  bool stopping_ = false;
  std::optional<Record> ended_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

/// A client's upload of ByteStream(seed) on a non-blocking socket, sent as fast as the socket takes it.
class Upload {
 public:
  explicit Upload(std::uint64_t seed) : seed_(seed), source_(seed) {}
  /// Sends until the socket takes nothing more for 1 s (four 250 ms polls without progress): held
  /// back through the proxy. False when that did not happen within `timeout`.
  bool until_held_back(int fd, Millis timeout);
  /// Sends `bytes` more (blocking until they went, or the deadline: false).
  bool more(int fd, std::uint64_t bytes, Millis timeout);
  std::uint64_t sent() const { return sent_; }
  /// SHA-256 of everything sent.
  std::string sha() const;

 private:
  bool send_some(int fd, std::uint64_t limit);  // false when the socket took nothing
  std::uint64_t seed_;
  ByteStream source_;
  std::string pending_;  // generated, not yet sent
  std::uint64_t sent_ = 0;
};

/// An echo server on one epoll thread, for thousands of connections (TcpServer runs a thread per
/// connection). At the peer's EOF it flushes what it owes and closes.
class PollEchoServer {
 public:
  explicit PollEchoServer(int family = AF_INET);
  ~PollEchoServer();
  PollEchoServer(const PollEchoServer&) = delete;
  PollEchoServer& operator=(const PollEchoServer&) = delete;

  const Address& address() const { return address_; }
  std::uint64_t accepted() const { return accepted_.load(); }
  std::size_t open() const { return open_.load(); }

 private:
  void run();
  Fd listen_fd_;
  Fd stop_fd_;
  Fd epoll_fd_;
  Address address_;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::size_t> open_{0};
  std::thread thread_;
};

/// Raises this process's soft RLIMIT_NOFILE to at least `wanted` (up to the hard limit); returns
/// the soft limit in force afterwards. Children (the daemon) inherit it.
std::uint64_t raise_fd_limit(std::uint64_t wanted);

/// Data bytes queued in the kernel on the TCP sockets in `state` that `ss` finds with `filter` (an
/// ss filter expression, e.g. "dst 127.0.0.1:4000"): the sums of their Recv-Q and Send-Q (for a
/// listening socket, Recv-Q is its accept queue). nullopt when ss failed or found no socket.
struct SocketQueues {
  std::uint64_t receive = 0;  // unread bytes
  std::uint64_t send = 0;     // unacknowledged bytes
  std::size_t sockets = 0;
};
std::optional<SocketQueues> socket_queues(const std::string& filter, const std::string& state = "established");

/// The bytes the kernel holds for one proxied session: Recv-Q and Send-Q of the two sockets on the
/// proxy's port and of the two on the backend's port. nullopt unless ss finds two on each side.
struct SessionQueues {
  std::uint64_t client_side = 0;
  std::uint64_t backend_side = 0;
  std::uint64_t total() const { return client_side + backend_side; }
};
std::optional<SessionQueues> session_queues(std::uint16_t proxy_port, std::uint16_t backend_port);

/// The bytes inside Sluice while nothing moves: what the sender wrote, less what the receiver read
/// and what the kernel holds in the session's four sockets (negative would mean a miscount).
inline std::int64_t held_in_sluice(std::uint64_t sent, std::uint64_t received, std::uint64_t in_kernel) {
  return static_cast<std::int64_t>(sent) - static_cast<std::int64_t>(received + in_kernel);
}

/// A reader of 1 KiB/s: waits 250 ms, then reads 256 bytes from `client` into `received`.
void read_slowly(Client& client, std::string& received);
/// Reads slowly until `backend` has written nothing more for 1 s (four reads): its send is blocked,
/// held back through the proxy. False when that did not happen within `timeout`.
bool read_slowly_until_held_back(Client& client, std::string& received, const StreamServer& backend,
                                 Millis timeout = 20s);

/// True when `data` equals the first data.size() bytes of ByteStream(seed).
bool is_stream_prefix(const std::string& data, std::uint64_t seed);

/// Sorted copy, for comparing multisets of hashes.
std::vector<std::string> sorted(std::vector<std::string> values);

}  // namespace sluice::it
