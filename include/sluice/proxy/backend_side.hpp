#pragma once
// The backend's end of a session: a slot on a backend, the socket connected to it, and the times
// of its connect. A session may go through several (retries); the request-level HTTP mode will
// take one per request from a pool while its ClientSide stays.

#include <cstdint>

#include <uv.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

struct Backend;

/// A connect error that is the proxy's, not the backend's: out of descriptors, memory or local
/// ports towards that address. Counted against the listener (`local_error`), never the backend.
bool is_local_connect_error(int status);

class BackendSide {
 public:
  class Events {
   public:
    /// The connect ended: 0, or libuv's error. Never called from inside connect().
    virtual void connect_done(int status) = 0;
    /// The socket is closed (libuv returned the handle): the slot on `backend` may be released.
    virtual void backend_closed(Backend& backend) = 0;

   protected:
    ~Events() = default;
  };

  explicit BackendSide(Events& events) : events_(events) {}
  BackendSide(const BackendSide&) = delete;
  BackendSide& operator=(const BackendSide&) = delete;

  /// Holding a slot on `backend`: opens a socket and starts connecting to its address. Returns 0
  /// or libuv's error; after an error the socket (if one was opened) must still be close()d.
  int connect(uv_loop_t* loop, Backend& backend);
  void mark_connected();

  /// Closes the socket (with a RST when `reset`); backend_closed() follows in a later callback.
  void close(bool reset);
  bool is_open() const { return open_; }
  uv_stream_t* stream() { return as_stream(&socket_); }
  uv_tcp_t* socket() { return &socket_; }
  /// The backend of the slot held (the last one connected to, until its socket is closed).
  Backend* backend() const { return backend_; }
  std::uint64_t connect_started_ns() const { return connect_started_ns_; }
  std::uint64_t connected_ns() const { return connected_ns_; }  // 0 until connected

 private:
  void on_closed();

  Events& events_;
  Backend* backend_ = nullptr;
  bool open_ = false;  // the socket handle is initialised and not yet closed
  std::uint64_t connect_started_ns_ = 0;
  std::uint64_t connected_ns_ = 0;
  uv_tcp_t socket_{};
  uv_connect_t connect_req_{};
};

}  // namespace sluice
