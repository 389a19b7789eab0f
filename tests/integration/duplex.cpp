#include "duplex.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <unordered_map>

#include "data.hpp"
#include "netns.hpp"  // run_command

namespace sluice::it {

// ---- run_duplex ----

DuplexOutcome run_duplex(int fd, const DuplexPlan& plan, int stop_fd) {
  DuplexOutcome outcome;
  if (plan.receive_buffer > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &plan.receive_buffer, sizeof plan.receive_buffer);
  ByteStream source(plan.seed);
  Sha256 sent_hash;
  Sha256 received_hash;
  std::vector<char> out(64 * 1024);
  std::vector<char> in(128 * 1024);
  std::size_t out_begin = 0;
  std::size_t out_end = 0;
  std::uint64_t generated = 0;
  bool write_shut = false;
  bool peer_eof = false;
  std::size_t burst_left = plan.read_burst_bytes;
  auto read_resume = Clock::now();
  auto last_progress = Clock::now();

  for (;;) {
    // Refill: up to the hold point until the peer's EOF, then to the end.
    if (out_begin == out_end && generated < plan.send_bytes) {
      std::uint64_t allowed = plan.send_bytes - generated;
      if (!peer_eof && plan.hold_until_peer_eof != kNoHold)
        allowed = generated < plan.hold_until_peer_eof ? std::min(allowed, plan.hold_until_peer_eof - generated) : 0;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), allowed));
      if (n > 0) {
        source.fill(out.data(), n);
        sent_hash.update(out.data(), n);
        generated += n;
        out_begin = 0;
        out_end = n;
      }
    }
    if (out_begin == out_end && generated == plan.send_bytes && !write_shut) {
      if (::shutdown(fd, SHUT_WR) != 0) {
        outcome.failure = "shutdown: " + errno_text(errno);
        break;
      }
      write_shut = true;
    }
    if (write_shut && peer_eof) break;

    const auto now = Clock::now();
    const bool read_paused = now < read_resume;
    const bool want_read = !peer_eof && !read_paused;
    const bool want_write = out_begin < out_end;
    auto wake = last_progress + plan.stall_timeout;
    if (read_paused && !peer_eof) wake = std::min(wake, read_resume);
    const auto wait_ms = std::max<long long>(0, std::chrono::ceil<Millis>(wake - now).count());
    pollfd fds[2] = {{fd, static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0)), 0},
                     {stop_fd, POLLIN, 0}};
    const int ready = ::poll(fds, stop_fd >= 0 ? 2 : 1, static_cast<int>(wait_ms));
    if (ready < 0) {
      if (errno == EINTR) continue;
      outcome.failure = "poll: " + errno_text(errno);
      break;
    }
    if (stop_fd >= 0 && fds[1].revents != 0) {
      outcome.failure = "stopped";
      break;
    }
    if (ready == 0) {
      if (Clock::now() >= last_progress + plan.stall_timeout) {
        outcome.failure = "no progress for " + std::to_string(plan.stall_timeout.count()) + " ms (sent " +
                          std::to_string(outcome.sent) + ", received " + std::to_string(outcome.received) + ")";
        break;
      }
      continue;
    }
    const short revents = fds[0].revents;
    if (want_write && (revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::send(fd, out.data() + out_begin, out_end - out_begin, MSG_NOSIGNAL);
      if (n > 0) {
        out_begin += static_cast<std::size_t>(n);
        outcome.sent += static_cast<std::uint64_t>(n);
        last_progress = Clock::now();
      } else if (errno != EAGAIN && errno != EINTR) {
        outcome.failure = "send after " + std::to_string(outcome.sent) + " bytes: " + errno_text(errno);
        break;
      }
    }
    if (want_read && (revents & (POLLIN | POLLERR | POLLHUP))) {
      std::size_t size = in.size();
      if (plan.read_burst_bytes > 0) size = std::min(size, burst_left);
      const ssize_t n = ::recv(fd, in.data(), size, 0);
      if (n > 0) {
        received_hash.update(in.data(), static_cast<std::size_t>(n));
        outcome.received += static_cast<std::uint64_t>(n);
        last_progress = Clock::now();
        if (plan.read_burst_bytes > 0) {
          burst_left -= static_cast<std::size_t>(n);
          if (burst_left == 0) {
            burst_left = plan.read_burst_bytes;
            read_resume = last_progress + plan.read_pause;
          }
        }
      } else if (n == 0) {
        peer_eof = true;
        outcome.sent_at_peer_eof = outcome.sent;
        last_progress = Clock::now();
      } else if (errno != EAGAIN && errno != EINTR) {
        outcome.failure = "recv after " + std::to_string(outcome.received) + " bytes: " + errno_text(errno);
        break;
      }
    }
  }
  outcome.sent_sha = sent_hash.hex();
  outcome.received_sha = received_hash.hex();
  return outcome;
}

// ---- DuplexServer ----

DuplexServer::DuplexServer(PlanFor plan_for, int family)
    : plan_for_(std::move(plan_for)), server_(family, [this](ServerConnection& c) {
        const DuplexPlan plan = plan_for_(next_index_++);
        DuplexOutcome outcome = run_duplex(c.fd(), plan, c.stop_fd());
        std::lock_guard lock(mutex_);
        outcomes_.push_back(std::move(outcome));
        changed_.notify_all();
      }) {}

DuplexServer::~DuplexServer() { server_.stop(); }

bool DuplexServer::wait_outcomes(std::size_t count, Millis timeout, std::vector<DuplexOutcome>& outcomes) {
  std::unique_lock lock(mutex_);
  const bool done = changed_.wait_for(lock, timeout, [&] { return outcomes_.size() >= count; });
  outcomes = outcomes_;
  return done;
}

// ---- StreamServer ----

StreamServer::StreamServer(Options options, int family)
    : options_(options), server_(family, [this](ServerConnection& c) {
        if (options_.send_buffer > 0)
          ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &options_.send_buffer, sizeof options_.send_buffer);
        ByteStream source(options_.seed);
        std::vector<char> chunk(16 * 1024);
        Record record;
        const std::uint64_t end = std::min(options_.limit, options_.reset_after);
        while (record.written < end) {
          const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), end - record.written));
          source.fill(chunk.data(), n);
          std::size_t done = 0;
          while (done < n) {
            const ssize_t sent = ::send(c.fd(), chunk.data() + done, n - done, MSG_NOSIGNAL);
            if (sent > 0) {
              done += static_cast<std::size_t>(sent);
              record.written += static_cast<std::uint64_t>(sent);
              written_ += static_cast<std::uint64_t>(sent);
              continue;
            }
            if (errno == EAGAIN || errno == EINTR) {
              pollfd fds[2] = {{c.fd(), POLLOUT, 0}, {c.stop_fd(), POLLIN, 0}};
              if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
              if (fds[1].revents != 0) {
                record.error = ECANCELED;
                break;
              }
              continue;
            }
            record.error = errno;
            break;
          }
          if (record.error != 0) break;
        }
        if (record.error == 0 && record.written >= options_.reset_after) c.reset();
        std::lock_guard lock(mutex_);
        records_.push_back(record);
        changed_.notify_all();
      }) {}

StreamServer::~StreamServer() { server_.stop(); }

bool StreamServer::wait_ended(std::size_t count, Millis timeout, std::vector<Record>& records) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return records_.size() >= count; })) return false;
  records.assign(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(count));
  return true;
}

// ---- MeteredSink ----

MeteredSink::MeteredSink(int family)
    : server_(family, [this](ServerConnection& c) {
        Sha256 sha;
        std::vector<char> buffer(64 * 1024);
        Record record;
        for (;;) {
          std::size_t want = buffer.size();
          {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] { return stopping_ || released_ || allowed_ > read_; });
            if (stopping_) break;
            if (!released_) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, allowed_ - read_));
          }
          const ssize_t n = c.read_some(buffer.data(), want);
          if (n <= 0) {
            record.end = n == 0 ? End::eof : errno == ECONNRESET ? End::reset : End::error;
            break;
          }
          sha.update(buffer.data(), static_cast<std::size_t>(n));
          std::lock_guard lock(mutex_);
          read_ += static_cast<std::uint64_t>(n);
          changed_.notify_all();
        }
        std::lock_guard lock(mutex_);
        record.bytes = read_;
        record.sha = sha.hex();
        ended_ = record;
        changed_.notify_all();
      }) {}

MeteredSink::~MeteredSink() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  server_.stop();
}

void MeteredSink::allow(std::uint64_t bytes) {
  std::lock_guard lock(mutex_);
  allowed_ = read_ + bytes;
  changed_.notify_all();
}

bool MeteredSink::wait_read(std::uint64_t total, Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return read_ >= total; });
}

void MeteredSink::release() {
  std::lock_guard lock(mutex_);
  released_ = true;
  changed_.notify_all();
}

std::uint64_t MeteredSink::read() const {
  std::lock_guard lock(mutex_);
  return read_;
}

bool MeteredSink::wait_ended(Millis timeout, Record& record) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return ended_.has_value(); })) return false;
  record = *ended_;
  return true;
}

// ---- Upload ----

bool Upload::send_some(int fd, std::uint64_t limit) {
  bool moved = false;
  while (sent_ < limit) {
    if (pending_.empty()) {
      pending_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(64 * 1024, limit - sent_)));
      source_.fill(pending_.data(), pending_.size());
    }
    const ssize_t n = ::send(fd, pending_.data(), pending_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pending_.erase(0, static_cast<std::size_t>(n));
      sent_ += static_cast<std::uint64_t>(n);
      moved = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return moved;
    throw std::runtime_error("upload: send failed: " + errno_text(errno));
  }
  return moved;
}

bool Upload::until_held_back(int fd, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  int still_polls = 0;
  while (still_polls < 4 && Clock::now() < deadline) {
    if (send_some(fd, std::numeric_limits<std::uint64_t>::max())) {
      still_polls = 0;
      continue;
    }
    // The pace of the check, and the wait for room: 250 ms without room counts as one still poll.
    still_polls = poll_until(fd, POLLOUT, Clock::now() + 250ms) == 0 ? still_polls + 1 : 0;
  }
  return still_polls >= 4;
}

bool Upload::more(int fd, std::uint64_t bytes, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::uint64_t limit = sent_ + bytes;
  while (sent_ < limit) {
    if (send_some(fd, limit)) continue;
    if (Clock::now() >= deadline) return false;
    poll_until(fd, POLLOUT, deadline);
  }
  return true;
}

std::string Upload::sha() const { return sha256_hex(pattern(static_cast<std::size_t>(sent_), seed_)); }

// ---- PollEchoServer ----

PollEchoServer::PollEchoServer(int family) {
  listen_fd_ = bind_tcp_socket(Address::loopback(family));
  if (::listen(listen_fd_.get(), 4096) != 0) throw_errno("listen", errno);
  address_ = local_address(listen_fd_.get());
  stop_fd_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_fd_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!stop_fd_ || !epoll_fd_) throw_errno("eventfd/epoll_create1", errno);
  for (const int fd : {listen_fd_.get(), stop_fd_.get()}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw_errno("epoll_ctl", errno);
  }
  thread_ = std::thread([this] { run(); });
}

PollEchoServer::~PollEchoServer() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_.get(), &one, sizeof one);
  thread_.join();
}

void PollEchoServer::run() {
  struct Connection {
    Fd fd;
    std::string pending;  // echoed bytes the socket did not take yet
    bool peer_eof = false;
  };
  std::unordered_map<int, Connection> connections;
  auto close_connection = [&](int fd) {
    connections.erase(fd);  // closing removes it from the epoll set
    --open_;
  };
  auto set_events = [&](int fd, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &event);
  };
  std::vector<epoll_event> events(256);
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd_.get()) return;  // the map's destructor closes every connection
      if (fd == listen_fd_.get()) {
        for (;;) {
          const int accepted = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (accepted < 0) break;
          ++accepted_;
          ++open_;
          connections[accepted].fd = Fd(accepted);
          epoll_event event{};
          event.events = EPOLLIN;
          event.data.fd = accepted;
          ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, accepted, &event);
        }
        continue;
      }
      auto it = connections.find(fd);
      if (it == connections.end()) continue;
      Connection& c = it->second;
      bool failed = false;
      if (!c.pending.empty()) {  // EPOLLOUT (or an error): flush first
        const ssize_t sent = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (sent > 0) {
          c.pending.erase(0, static_cast<std::size_t>(sent));
        } else if (errno != EAGAIN && errno != EINTR) {
          failed = true;
        }
      }
      while (!failed && !c.peer_eof && c.pending.empty()) {
        const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (got > 0) {
          const ssize_t sent = ::send(fd, buffer.data(), static_cast<std::size_t>(got), MSG_NOSIGNAL);
          if (sent < 0 && errno != EAGAIN && errno != EINTR) {
            failed = true;
          } else {
            const std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
            c.pending.assign(buffer.data() + done, static_cast<std::size_t>(got) - done);
          }
        } else if (got == 0) {
          c.peer_eof = true;
        } else {
          if (errno != EAGAIN && errno != EINTR) failed = true;
          break;
        }
      }
      if (failed || (c.peer_eof && c.pending.empty())) {
        close_connection(fd);
      } else {
        set_events(fd, c.pending.empty() ? EPOLLIN : EPOLLOUT);
      }
    }
  }
}

// ---- process helpers ----

std::uint64_t raise_fd_limit(std::uint64_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min<rlim_t>(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

std::optional<SocketQueues> socket_queues(const std::string& filter, const std::string& state) {
  // -t tcp, -n numeric, -H no header; with a state filter the columns are: Recv-Q Send-Q Local Peer.
  const CommandResult result = run_command({"ss", "-tnH", "state", state, filter}, {}, 5s);
  if (result.exit_code != 0) return std::nullopt;
  SocketQueues queues;
  std::istringstream lines(result.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::uint64_t receive = 0;
    std::uint64_t send = 0;
    if (!(fields >> receive >> send)) continue;
    queues.receive += receive;
    queues.send += send;
    ++queues.sockets;
  }
  if (queues.sockets == 0) return std::nullopt;
  return queues;
}

std::optional<SessionQueues> session_queues(std::uint16_t proxy_port, std::uint16_t backend_port) {
  const auto on_port = [](std::uint16_t port) {
    return "( sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port) + " )";
  };
  const auto client_side = socket_queues(on_port(proxy_port));
  const auto backend_side = socket_queues(on_port(backend_port));
  if (!client_side || !backend_side || client_side->sockets != 2 || backend_side->sockets != 2) return std::nullopt;
  return SessionQueues{.client_side = client_side->receive + client_side->send,
                       .backend_side = backend_side->receive + backend_side->send};
}

void read_slowly(Client& client, std::string& received) {
  std::this_thread::sleep_for(250ms);  // the reader's pace, not a wait for the daemon
  received += client.read_exact(256, 5s);
}

bool read_slowly_until_held_back(Client& client, std::string& received, const StreamServer& backend, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::uint64_t written = backend.written();
  int still_reads = 0;
  while (still_reads < 4 && Clock::now() < deadline) {
    read_slowly(client, received);
    const std::uint64_t now_written = backend.written();
    still_reads = now_written == written ? still_reads + 1 : 0;
    written = now_written;
  }
  return still_reads >= 4;
}

bool is_stream_prefix(const std::string& data, std::uint64_t seed) { return data == pattern(data.size(), seed); }

std::vector<std::string> sorted(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  return values;
}

}  // namespace sluice::it
