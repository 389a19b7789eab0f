#pragma once
// A test backend for HTTP health checks: it reads one request per connection with the daemon's
// HTTP parser, answers it with the status set by set_status() (body "<status>\n", then closes) and
// keeps every request head it read, so a test can flip a backend's health and see what was sent.

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "backends.hpp"
#include "sluice/http/parser.hpp"

namespace sluice::it {

class HttpStatusServer {
 public:
  explicit HttpStatusServer(int status = 200, int family = AF_INET);
  const Address& address() const { return server_.address(); }

  /// The status of every answer from now on.
  void set_status(int status);
  /// Waits until at least `count` requests were read; returns them in arrival order.
  bool wait_requests(std::size_t count, Millis timeout, std::vector<sluice::http::MessageHead>& heads);
  /// Requests read so far.
  std::size_t requests() const;

 private:
  void serve(ServerConnection& connection);

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int status_;
  std::vector<sluice::http::MessageHead> heads_;
  TcpServer server_;  // last: stopped before the members its handler uses
};

}  // namespace sluice::it
