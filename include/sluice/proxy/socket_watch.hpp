#pragma once
// Socket helpers of the proxy, and a poll handle on a duplicate of a socket's descriptor: libuv allows one handle per descriptor,
// and the socket's own is busy with its stream. Used to wait for a sink to become writable (splice)
// and to see a queued client's reset while it is not read.

#include <uv.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

class SocketWatch {
 public:
  SocketWatch() = default;
  SocketWatch(const SocketWatch&) = delete;
  SocketWatch& operator=(const SocketWatch&) = delete;
  ~SocketWatch() { close(); }

  /// Watches `socket` for `events`, calling `on_event` with `data` = `owner`. Returns false (and
  /// watches nothing) when no duplicate below `descriptor_ceiling` or no handle could be had.
  bool open(uv_loop_t* loop, uv_stream_t* socket, int events, uv_poll_cb on_event, void* owner,
            int descriptor_ceiling);
  /// Stops watching (idempotent): no callback runs after this; the duplicate is closed.
  void close();

  bool is_open() const { return static_cast<bool>(poll_); }
  bool is(const uv_poll_t* poll) const { return poll_.get() == poll; }
  int descriptor() const { return fd_; }

 private:
  Handle<uv_poll_t> poll_;
  int fd_ = -1;  // the duplicate
};

/// The descriptor under a libuv stream, or -1.
int descriptor_of(uv_stream_t* stream);
/// Whether the socket's pending error is a reset. libuv reports a reset that arrives with the last
/// bytes as UV_EOF: this tells the two apart, so a truncated stream is not passed on as complete.
bool was_reset(uv_stream_t* stream);
/// Closes a TCP socket, with a RST when `reset` (a plain close when a RST cannot be sent: a
/// shutdown in progress); `on_closed` runs with `data` = `owner`.
void close_socket(uv_tcp_t* socket, bool reset, void* owner, uv_close_cb on_closed);

}  // namespace sluice
