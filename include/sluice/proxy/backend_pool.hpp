#pragma once
// Backend connections of `mode: http` and the per-loop pool of idle ones. A connection carries one
// request at a time (no pipelining to backends); after a complete exchange that both ends keep
// alive it goes back to the pool of its backend, where it waits at most `pool_idle_timeout`
// (closed before the backend's own keep-alive timeout would close it under a request), at most
// `pool_max_idle` of them per backend. While idle the pool reads it: any byte or EOF from the
// backend drops it. The counts are the backend's own (BackendStats::pool_*), kept by this file.
//
// A connection's socket stays read across the hand-overs between its user and the pool: a libuv
// read stopped and started again costs two epoll_ctl calls on the next loop turn, four a request.
// So a read the user no longer wants is stopped lazily: only when bytes come before the user wants
// them again, the socket is then left unread (the alloc callback gives no buffer) and its reading
// stopped.

#include <cstdint>
#include <vector>

#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

struct Backend;
class Service;
class BackendPool;

class BackendConnection {
 public:
  /// Who uses the connection: told when its socket is closed (the handle is back from libuv).
  class User {
   public:
    virtual void backend_connection_closed(BackendConnection& connection) = 0;
    /// While the user reads (read(true)): the buffer for the next read, and what it gave (libuv's
    /// nread: a byte count, 0, UV_EOF or an error).
    virtual uv_buf_t backend_read_buffer(BackendConnection& connection) = 0;
    virtual void backend_read(BackendConnection& connection, ssize_t nread) = 0;

   protected:
    ~User() = default;
  };

  /// A new socket towards `backend`'s address, connecting; `on_connect(connection, status)` runs
  /// on success or failure (never from inside this call). Returns nullptr with `error` set when
  /// libuv refuses (no descriptor, no local port).
  using ConnectCallback = void (*)(BackendConnection& connection, int status);
  static BackendConnection* connect(uv_loop_t* loop, Backend& backend, User& user, ConnectCallback on_connect,
                                    int& error);

  uv_stream_t* stream() { return as_stream(&socket_); }
  Backend* backend() const { return backend_; }
  bool reused() const { return requests_ > 1; }
  std::uint64_t connect_started_ns() const { return connect_started_ns_; }
  std::uint64_t connected_ns() const { return connected_ns_; }
  void set_user(User* user) { user_ = user; }
  User* user() const { return user_; }
  /// Another request starts on it.
  void count_request() { ++requests_; }
  /// The user's bytes are read while `want` (User::backend_read). Returns libuv's code.
  int read(bool want);

  /// Closes the socket (with a RST when `reset`) and frees this object in the close callback,
  /// after telling its user. Writes still queued come back cancelled first.
  void close(bool reset);

 private:
  friend class BackendPool;
  BackendConnection() = default;
  ~BackendConnection() = default;
  void on_closed();
  int start_reading();  // libuv reads the socket (for the user or the pool)
  void on_alloc(uv_buf_t* buf);
  void on_read(ssize_t nread);

  uv_tcp_t socket_{};
  uv_connect_t connect_req_{};
  Backend* backend_ = nullptr;  // nullptr once the backend's service is gone (idle in the pool)
  User* user_ = nullptr;
  ConnectCallback on_connect_ = nullptr;
  BackendPool* pool_ = nullptr;
  std::uint64_t requests_ = 0;
  std::uint64_t connect_started_ns_ = 0;
  std::uint64_t connected_ns_ = 0;
  std::uint64_t idle_deadline_ms_ = 0;  // loop time at which an idle connection is closed
  bool closing_ = false;
  bool reading_ = false;     // libuv reads the socket
  bool user_reads_ = false;  // for the user (else for the pool while idle, or nobody)
  char idle_byte_ = 0;  // an idle connection reads into this: anything read drops it
};

class BackendPool {
 public:
  explicit BackendPool(uv_loop_t* loop) : loop_(loop) {}
  ~BackendPool() = default;
  BackendPool(const BackendPool&) = delete;
  BackendPool& operator=(const BackendPool&) = delete;

  /// The most recently idled connection to `backend`, now the caller's (not read any more), or
  /// nullptr.
  BackendConnection* take(Backend& backend, BackendConnection::User& user);
  /// Keeps `connection` (nothing in flight either way) for another request, or closes it when
  /// the backend already has `max_idle` idle ones or the pool is closing.
  void put(BackendConnection* connection, std::uint32_t max_idle, Millis idle_timeout);
  /// The service is being freed: its backends' idle connections are closed.
  void forget(const Service& service);
  /// The backend is draining: its idle connections are closed (put() keeps none for it from now).
  void forget(const Backend& backend);
  /// Every idle connection closed, and no more kept (drain, shutdown).
  void close_all();

  std::size_t idle_count() const { return idle_.size(); }

 private:
  friend class BackendConnection;
  void drop(BackendConnection* connection);  // out of idle_, counts updated
  void on_sweep();
  void arm_sweep();

  uv_loop_t* loop_;
  std::vector<BackendConnection*> idle_;  // oldest first
  Handle<uv_timer_t> sweep_;              // while something is idle: closes expired ones
  bool closed_ = false;
};

}  // namespace sluice
