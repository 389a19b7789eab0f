#pragma once
// A client of an `accept_proxy` listener before its PROXY header has arrived: the header is read
// off the socket (peeked, then exactly its bytes taken, so the client's own bytes stay for the
// session), within `accept_proxy_timeout`. Then the listener gets the socket and the addresses,
// or closes it as `bad_proxy_header`. Exists only on such listeners: the others pay nothing.

#include <array>
#include <cstddef>
#include <list>

#include <uv.h>

#include "sluice/config/duration.hpp"
#include "sluice/net/proxy_protocol.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class ProxyHeaderWait {
 public:
  class Events {
   public:
    /// The header is complete and taken off the socket: `fd` is the listener's again.
    virtual void proxy_header_received(ProxyHeaderWait& wait, int fd, const proxy_protocol::Parsed& header) = 0;
    /// No valid header (or none in time): `fd` is still open and the listener's to close; `why`
    /// says what was wrong.
    virtual void proxy_header_failed(ProxyHeaderWait& wait, int fd, const char* why) = 0;

   protected:
    ~Events() = default;
  };
  using List = std::list<ProxyHeaderWait>;

  ProxyHeaderWait(Events& events, int fd) : events_(events), fd_(fd) {}
  ~ProxyHeaderWait() { stop(); }
  ProxyHeaderWait(const ProxyHeaderWait&) = delete;
  ProxyHeaderWait& operator=(const ProxyHeaderWait&) = delete;

  /// Starts watching the socket; false (with libuv's code in `error`) if it cannot.
  bool start(uv_loop_t* loop, Millis timeout, int& error);
  /// Closes the socket unread (the listener stops accepting).
  void abandon();

  List::iterator self;  // its place in the listener's list

 private:
  void on_readable();
  void stop();
  void fail(const char* why);

  Events& events_;
  int fd_;
  Handle<uv_poll_t> readable_;
  Handle<uv_timer_t> deadline_;
  std::size_t taken_ = 0;  // header bytes already taken off the socket
  std::array<char, proxy_protocol::kV2MaxBytes> buffer_{};
};

}  // namespace sluice
