#pragma once
// The client's end of a session: its socket, its address, and (while it waits in a queue and is
// not read) a watch that sees it reset. Apart from the backend's end, so that a session can keep
// one client while backend connections come and go (the request-level HTTP mode).

#include <netinet/in.h>
#include <uv.h>

#include "sluice/proxy/socket_watch.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class ClientSide {
 public:
  ClientSide() = default;
  ClientSide(const ClientSide&) = delete;
  ClientSide& operator=(const ClientSide&) = delete;

  /// Takes over the accepted descriptor `fd` (closed here if libuv refuses it). libuv's code; the
  /// handle needs close() whenever is_open().
  int open(uv_loop_t* loop, int fd);
  bool is_open() const { return open_; }
  uv_stream_t* stream() { return as_stream(&socket_); }
  uv_tcp_t* socket() { return &socket_; }

  /// The client's address (AF_INET or AF_INET6), asked of the socket on first use: most sessions
  /// never need it, and getpeername is a syscall each.
  const sockaddr* address() const;
  /// The address the client connected to (a listener's local address), asked on first use.
  const sockaddr* local_address() const;
  /// `accept_proxy`: the addresses a front load balancer's PROXY header gave, which stand for the
  /// socket's from now on (allow list, access log, X-Forwarded-For, send_proxy).
  void set_addresses(const sockaddr_storage& client, const sockaddr_storage& local);

  /// While the client is queued and not read (after its EOF, or paused at the watermark): a reset
  /// still wakes `on_event` (data = `owner`), even when descriptors run short.
  void watch_for_reset(uv_loop_t* loop, uv_poll_cb on_event, void* owner);
  void stop_watching() { reset_watch_.close(); }
  /// In the watch's callback: whether the socket has an error (a reset).
  bool has_error() const;

  /// Closes the socket (with a RST when `reset`); `on_closed` gets `owner` in `data`.
  void close(bool reset, void* owner, uv_close_cb on_closed);
  void closed() { open_ = false; }

 private:
  uv_tcp_t socket_{};
  bool open_ = false;
  mutable sockaddr_in6 address_{};  // large enough for IPv4 too; AF_UNSPEC until asked
  mutable sockaddr_in6 local_address_{};
  SocketWatch reset_watch_;
};

}  // namespace sluice
