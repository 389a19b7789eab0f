#pragma once
// HTTP/1.1 backends run by the test process whose answers the test releases one by one, for the
// pipelining tests (http.pipeline_depth): each request is held from its head until the test calls
// release(its path), so which requests are in service at once, and in which order they complete,
// is the test's choice. Answers: "/big/N" 200 with N bytes of pattern(N, 7), anything else 200 with
// "response to PATH\n", both with Content-Length, kept alive as the request asks.

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends.hpp"
#include "net.hpp"

namespace sluice::it {

class HeldBackends {
 public:
  explicit HeldBackends(int count);
  ~HeldBackends();
  HeldBackends(const HeldBackends&) = delete;
  HeldBackends& operator=(const HeldBackends&) = delete;

  const Address& address(int i) const { return servers_.at(static_cast<std::size_t>(i))->address(); }
  /// Requests held now (head read, not released), over every backend; and the most ever at once.
  int holding() const;
  int max_holding() const;
  /// The paths of the requests whose head arrived, oldest first, over every backend.
  std::vector<std::string> arrived() const;
  /// Waits until exactly `n` requests are held; false when `timeout` passes first.
  bool wait_holding(int n, Millis timeout) const;
  /// Waits until `n` requests have arrived; false when `timeout` passes first.
  bool wait_arrived(std::size_t n, Millis timeout) const;
  /// Held requests whose connection Sluice closed before they were released.
  int abandoned() const;
  /// Lets the request for `path` be answered (now, or as soon as it arrives).
  void release(const std::string& path);

  static std::string answer_body(const std::string& path);

 private:
  void serve(ServerConnection& connection);

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<std::string> arrived_;
  std::set<std::string> released_;
  int holding_ = 0;
  int max_holding_ = 0;
  int abandoned_ = 0;
  bool stopping_ = false;
  std::vector<std::unique_ptr<TcpServer>> servers_;  // last: stopped before the members their handlers use
};

}  // namespace sluice::it
