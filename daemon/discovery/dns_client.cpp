#include "sluice/discovery/dns_client.hpp"

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>
#include <ares.h>
#include <spdlog/spdlog.h>

#include "sluice/log/log_event.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace sluice {

struct DnsLookup::Query {
  DnsClient* client = nullptr;
  std::string host;
  std::uint16_t port = 0;
  DnsClient::Answer answer;     // empty once answered or cancelled
  Handle<uv_timer_t> deadline;  // open while the answer is awaited

  // Hands `result` to the asker, at most once.
  void deliver(DnsAnswer result) {
    deadline.close();
    if (!answer) return;
    auto call = std::exchange(answer, nullptr);  // the asker may cancel (or destroy) its DnsLookup inside
    call(std::move(result));
  }
};

DnsLookup& DnsLookup::operator=(DnsLookup&& other) noexcept {
  if (this != &other) {
    cancel();
    query_ = std::move(other.query_);
  }
  return *this;
}

bool DnsLookup::pending() const { return query_ && query_->answer; }

void DnsLookup::cancel() {
  if (!query_) return;
  query_->answer = nullptr;
  query_->deadline.close();
  query_.reset();
}

namespace {

constexpr int kTries = 2;

// A server of c-ares's list as text: "10.0.0.1:53", "[::1]:53".
std::string server_text(const ares_addr_port_node& node) {
  Endpoint endpoint{"", static_cast<std::uint16_t>(node.udp_port != 0 ? node.udp_port : 53)};
  char host[INET6_ADDRSTRLEN] = "?";
  inet_ntop(node.family, node.family == AF_INET ? static_cast<const void*>(&node.addr.addr4)
                                                : static_cast<const void*>(&node.addr.addr6),
            host, sizeof host);
  endpoint.host = host;
  return endpoint.to_string();
}

}  // namespace

DnsClient::DnsClient(uv_loop_t* loop, const DnsConfig& config) : loop_(loop), timeout_(config.timeout) {
  static const int library = ares_library_init(ARES_LIB_INIT_ALL);  // once per process
  if (library != ARES_SUCCESS) init_error_ = std::string("c-ares cannot start: ") + ares_strerror(library);
  if (const int rc = timer_.init(loop_, this, uv_timer_init); rc != 0 && init_error_.empty()) {
    init_error_ = std::string("cannot make the DNS timer: ") + uv_strerror(rc);
  }
  if (init_error_.empty()) start_channel();
  if (channel_ != nullptr && !config.servers.empty()) use_servers(config.servers);
  if (channel_ != nullptr) servers_text_ = servers_in_use();
  if (!init_error_.empty()) {
    spdlog::error("dns: {}", init_error_);
  } else {
    log_event(spdlog::level::info, "dns", {{"servers", servers_text_}, {"timeout_ms", timeout_.count()}});
  }
}

void DnsClient::start_channel() {
  ares_options options{};
  options.sock_state_cb = &DnsClient::on_socket_state;
  options.sock_state_cb_data = this;
  // c-ares waits `timeout` for a try, doubling it for each round over the servers: a third of our
  // deadline, two tries, and c-ares itself gives up at about the deadline with one server.
  options.timeout = std::max(1, static_cast<int>(timeout_.count() / 3));
  options.tries = kTries;
  ares_channel channel = nullptr;
  const int rc = ares_init_options(&channel, &options, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) {
    init_error_ = std::string("c-ares cannot start: ") + ares_strerror(rc);
    return;
  }
  channel_ = channel;
}

void DnsClient::use_servers(const std::vector<Endpoint>& servers) {
  std::vector<ares_addr_port_node> nodes(servers.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    ares_addr_port_node& node = nodes[i];
    node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    node.udp_port = node.tcp_port = servers[i].port;
    // IP literals (the config checked them): IPv4 if it reads as one, else IPv6.
    const char* host = servers[i].host.c_str();
    node.family = inet_pton(AF_INET, host, &node.addr.addr4) == 1 ? AF_INET : AF_INET6;
    if (node.family == AF_INET6 && inet_pton(AF_INET6, host, &node.addr.addr6) != 1) {
      init_error_ = "dns.servers: '" + servers[i].host + "' is not an IP address";
      return;
    }
  }
  if (const int rc = ares_set_servers_ports(channel_, nodes.data()); rc != ARES_SUCCESS) {
    init_error_ = std::string("c-ares rejects dns.servers: ") + ares_strerror(rc);
  }
}

std::string DnsClient::servers_in_use() const {
  std::string text;
  ares_addr_port_node* servers = nullptr;
  if (ares_get_servers_ports(channel_, &servers) != ARES_SUCCESS) return "?";
  for (const ares_addr_port_node* node = servers; node != nullptr; node = node->next) {
    text += (text.empty() ? "" : ",") + server_text(*node);
  }
  ares_free_data(servers);
  return text;
}

DnsClient::~DnsClient() {
  // Nobody is answered any more; ares_destroy calls back every query with ARES_EDESTRUCTION.
  for (auto& [key, query] : in_flight_) {
    query->answer = nullptr;
    query->deadline.close();
  }
  if (channel_ != nullptr) ares_destroy(channel_);
  in_flight_.clear();
  sockets_.clear();
  timer_.close();
}

DnsLookup DnsClient::lookup(const std::string& host, std::uint16_t port, Answer answer) {
  auto query = std::make_shared<Query>();
  query->client = this;
  query->host = host;
  query->port = port;
  query->answer = std::move(answer);
  DnsLookup lookup(query);
  if (!init_error_.empty()) {
    query->deliver({{}, host + ": " + init_error_});
    return lookup;
  }
  int rc = query->deadline.init(loop_, query.get(), uv_timer_init);
  if (rc == 0) {
    rc = uv_timer_start(
        query->deadline.get(),
        [](uv_timer_t* timer) {
          Query* late = owner<Query>(timer);
          late->deliver({{}, late->client->timed_out(late->host)});
        },
        static_cast<std::uint64_t>(timeout_.count()), 0);
  }
  if (rc != 0) {
    query->deliver({{}, host + ": cannot start the lookup's timer: " + uv_strerror(rc)});
    return lookup;
  }
  in_flight_.emplace(query.get(), query);
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;  // A and AAAA
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;  // the port, set in every address
  const std::string service = std::to_string(port);
  ares_getaddrinfo(channel_, host.c_str(), service.c_str(), &hints, &DnsClient::on_ares_answer, query.get());
  arm_timer();
  return lookup;
}

void DnsClient::on_ares_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  auto* key = static_cast<const Query*>(arg);
  DnsClient& client = *key->client;
  const auto it = client.in_flight_.find(key);
  if (it == client.in_flight_.end()) {  // cannot happen: every query is in the map until here
    if (result != nullptr) ares_freeaddrinfo(result);
    return;
  }
  const std::shared_ptr<Query> query = it->second;
  client.in_flight_.erase(it);
  DnsAnswer answer;
  if (status == ARES_SUCCESS && result != nullptr) {
    for (const ares_addrinfo_node* node = result->nodes; node != nullptr; node = node->ai_next) {
      if (node->ai_family != AF_INET && node->ai_family != AF_INET6) continue;
      sockaddr_storage address{};
      std::memcpy(&address, node->ai_addr, std::min<std::size_t>(node->ai_addrlen, sizeof address));
      answer.addresses.push_back(address);
    }
    sort_unique(answer.addresses);
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  if (status == ARES_EDESTRUCTION) return;  // the client is going away; nobody waits for this
  if (status != ARES_SUCCESS || answer.addresses.empty()) {
    answer.addresses.clear();
    answer.error = client.describe(status == ARES_SUCCESS ? ARES_ENODATA : status, query->host);
  }
  query->deliver(std::move(answer));
}

std::string DnsClient::describe(int status, const std::string& host) const {
  switch (status) {
    case ARES_ENOTFOUND:
      return host + ": no such name (NXDOMAIN)";
    case ARES_ENODATA:
      return host + ": no A or AAAA record";
    case ARES_ETIMEOUT:
      return timed_out(host);
    case ARES_ECONNREFUSED:  // c-ares 1.18 also says this when every server answered REFUSED
      return host + ": refused by " + servers_text_ + " (no DNS server there, or it refused the query)";
    case ARES_EREFUSED:
      return host + ": query refused by " + servers_text_;
    case ARES_ESERVFAIL:
      return host + ": server failure (SERVFAIL) from " + servers_text_;
    default:
      return host + ": " + ares_strerror(status);
  }
}

std::string DnsClient::timed_out(const std::string& host) const {
  return host + ": no answer within " + std::to_string(timeout_.count()) + "ms from " + servers_text_ + " (timeout)";
}

// --- c-ares's sockets and timeouts on the loop ----------------------------------------------------

void DnsClient::on_socket_state(void* data, int fd, int readable, int writable) {
  static_cast<DnsClient*>(data)->watch(fd, readable != 0, writable != 0);
}

void DnsClient::watch(int fd, bool readable, bool writable) {
  if (!readable && !writable) {
    sockets_.erase(fd);  // c-ares is closing it: no callback after this
    return;
  }
  Handle<uv_poll_t>& poll = sockets_[fd];
  if (!poll) {
    if (const int rc = poll.init(loop_, this, uv_poll_init_socket, fd); rc != 0) {
      spdlog::error("dns: cannot watch a DNS socket: {}; its queries will time out", uv_strerror(rc));
      sockets_.erase(fd);
      return;
    }
  }
  const int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  const int rc = uv_poll_start(poll.get(), events, [](uv_poll_t* handle, int status, int ready) {
    DnsClient* client = owner<DnsClient>(handle);
    uv_os_fd_t socket = -1;
    if (uv_fileno(as_handle(handle), &socket) != 0) return;
    // On an error c-ares reads the socket itself and learns what went wrong.
    const bool read = status < 0 || (ready & UV_READABLE) != 0;
    const bool write = status < 0 || (ready & UV_WRITABLE) != 0;
    client->process(read ? socket : ARES_SOCKET_BAD, write ? socket : ARES_SOCKET_BAD);
  });
  if (rc != 0) spdlog::error("dns: cannot watch a DNS socket: {}; its queries will time out", uv_strerror(rc));
}

void DnsClient::process(int read_fd, int write_fd) {
  ares_process_fd(channel_, read_fd, write_fd);
  arm_timer();
}

void DnsClient::arm_timer() {
  if (!timer_ || channel_ == nullptr) return;
  timeval wait{};
  if (ares_timeout(channel_, nullptr, &wait) == nullptr) {  // no query in flight
    uv_timer_stop(timer_.get());                           // cannot fail
    return;
  }
  const auto ms = static_cast<std::uint64_t>(wait.tv_sec) * 1000 + (static_cast<std::uint64_t>(wait.tv_usec) + 999) / 1000;
  const int rc = uv_timer_start(
      timer_.get(), [](uv_timer_t* timer) { owner<DnsClient>(timer)->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD); }, ms,
      0);
  if (rc != 0) spdlog::error("dns: cannot set the DNS timer: {}", uv_strerror(rc));
}

}  // namespace sluice
