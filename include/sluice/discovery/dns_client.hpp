#pragma once
// DNS through c-ares on one libuv loop (the control plane's): no thread per lookup. One
// ares_channel for the process; c-ares's sockets are watched with uv_poll_t handles (c-ares says
// which through its socket-state callback) and its retransmissions are driven by one uv_timer_t
// set from ares_timeout(). A lookup asks for every A and AAAA record of a name (ares_getaddrinfo,
// AF_UNSPEC; the hosts file first, as /etc/nsswitch.conf says) and answers all of them,
// deduplicated and in a stable order (sort_unique), or an error that names the host.
//
//   DnsLookup lookup_ = dns.lookup("web.default.svc", 8000, [this](DnsAnswer answer) { ... });
//   ...                        // destroying (or cancel()ing) lookup_ means the callback never runs
//
// The answer may come before lookup() returns (a name in the hosts file): check pending().

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <uv.h>

#include "sluice/config/dns_config.hpp"
#include "sluice/uv/handle.hpp"

// c-ares's types, so that ares.h stays out of this header.
struct ares_channeldata;
struct ares_addrinfo;

namespace sluice {

struct DnsAnswer {
  std::vector<sockaddr_storage> addresses;  // with the asked port; empty on failure
  std::string error;                        // empty on success, else why, naming the host
  bool ok() const { return error.empty(); }
};

class DnsClient;

/// One lookup in flight, owned by whoever asked. Destroying it cancels it.
class DnsLookup {
 public:
  DnsLookup() = default;
  DnsLookup(DnsLookup&&) noexcept = default;
  DnsLookup& operator=(DnsLookup&& other) noexcept;
  ~DnsLookup() { cancel(); }

  /// Asked and not yet answered (nor cancelled).
  bool pending() const;
  /// The callback will not run.
  void cancel();

 private:
  friend class DnsClient;
  struct Query;
  explicit DnsLookup(std::shared_ptr<Query> query) : query_(std::move(query)) {}
  std::shared_ptr<Query> query_;
};

class DnsClient {
 public:
  using Answer = std::function<void(DnsAnswer)>;

  /// Servers from `config.servers`, or /etc/resolv.conf when it is empty. When c-ares cannot
  /// start, the reason is logged and every lookup answers it as its error.
  DnsClient(uv_loop_t* loop, const DnsConfig& config);
  DnsClient(const DnsClient&) = delete;
  DnsClient& operator=(const DnsClient&) = delete;
  /// Lookups still in flight end without their callback; the handles close.
  ~DnsClient();

  /// The A and AAAA records of `host`, each with `port`. `answer` runs on the loop, once, within
  /// the configured timeout, unless the returned DnsLookup is cancelled or destroyed first.
  [[nodiscard]] DnsLookup lookup(const std::string& host, std::uint16_t port, Answer answer);

  /// The servers asked, for messages: "10.96.0.10:53,[fd00::10]:53".
  const std::string& servers() const { return servers_text_; }

 private:
  using Query = DnsLookup::Query;
  void start_channel();
  void use_servers(const std::vector<Endpoint>& servers);
  std::string servers_in_use() const;
  static void on_socket_state(void* data, int fd, int readable, int writable);
  static void on_ares_answer(void* arg, int status, int timeouts, ares_addrinfo* result);
  void watch(int fd, bool readable, bool writable);
  void process(int read_fd, int write_fd);
  void arm_timer();
  std::string describe(int status, const std::string& host) const;
  std::string timed_out(const std::string& host) const;

  uv_loop_t* loop_;
  Millis timeout_;
  ares_channeldata* channel_ = nullptr;  // an ares_channel; nullptr when c-ares could not start
  std::string init_error_;  // set when c-ares could not start
  std::string servers_text_;
  Handle<uv_timer_t> timer_;                                   // c-ares's next timeout
  std::map<int, Handle<uv_poll_t>> sockets_;                   // c-ares's sockets, by descriptor
  std::map<const Query*, std::shared_ptr<Query>> in_flight_;   // until c-ares calls back
};

}  // namespace sluice
