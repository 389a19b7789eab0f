#include "backends.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>

namespace sluice::it {

// ---- ServerConnection ----

bool ServerConnection::wait(short events) {
  for (;;) {
    pollfd fds[2] = {{fd_.get(), events, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (fds[1].revents != 0) {
      errno = ECANCELED;
      return false;
    }
    if (fds[0].revents != 0) return true;
  }
}

ssize_t ServerConnection::read_some(char* buffer, std::size_t size) {
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer, size, 0);
    if (n >= 0) return n;
    if (errno != EAGAIN && errno != EINTR) return -1;
    if (!wait(POLLIN)) return -1;
  }
}

bool ServerConnection::write_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait(POLLOUT)) return false;
    } else {
      return false;
    }
  }
  return true;
}

End ServerConnection::drain(std::uint64_t* bytes, int* error) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = read_some(buffer, sizeof buffer);
    if (n > 0) {
      if (bytes) *bytes += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) return End::eof;
    if (error) *error = errno;
    return errno == ECONNRESET ? End::reset : End::error;
  }
}

void ServerConnection::shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

// ---- TcpServer ----

TcpServer::TcpServer(int family, Handler handler) : TcpServer(Address::loopback(family), std::move(handler)) {}

TcpServer::TcpServer(const Address& bind, Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = bind_tcp_socket(bind);
  if (::listen(listen_fd_.get(), 128) != 0) throw_errno("listen", errno);
  address_ = local_address(listen_fd_.get());
  stop_fd_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) throw_errno("eventfd", errno);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpServer::~TcpServer() { stop(); }

void TcpServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_.get(), &one, sizeof one);
  acceptor_.join();
  std::list<Worker> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);  // iterators held by the workers stay valid
  }
  for (auto& worker : workers) worker.thread.join();
}

void TcpServer::reap_locked() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done) {
      it->thread.join();  // it has released mutex_ already; only its return is left
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void TcpServer::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    Fd connection(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!connection) continue;  // EAGAIN, ECONNABORTED: nothing to serve
    ++accepted_;
    std::lock_guard lock(mutex_);
    reap_locked();
    workers_.emplace_back();
    const auto worker = std::prev(workers_.end());
    worker->thread = std::thread([this, worker, fd = connection.release()] {
      try {
        ServerConnection session(Fd(fd), stop_fd_.get());
        handler_(session);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "test backend %s: handler failed: %s\n", address_.to_string().c_str(),
                     e.what());
      }
      std::lock_guard done_lock(mutex_);
      worker->done = true;
    });
  }
}

// ---- NameServer ----

NameServer::NameServer(std::string name, int family)
    : name_(std::move(name)),
      server_(family, [this](ServerConnection& c) { c.write_all(name_ + "\n"); }) {}

// ---- EchoServer ----

namespace {

void echo(ServerConnection& c) {
  std::vector<char> buffer(256 * 1024);
  for (;;) {
    const ssize_t n = c.read_some(buffer.data(), buffer.size());
    if (n < 0) return;
    if (n == 0) {  // the client's EOF: everything before it has been written back
      c.shutdown_write();
      return;
    }
    if (!c.write_all(std::string_view(buffer.data(), static_cast<std::size_t>(n)))) return;
  }
}

}  // namespace

EchoServer::EchoServer(int family) : server_(family, echo) {}

EchoServer::EchoServer(const Address& bind) : server_(bind, echo) {}

// ---- HoldServer ----

HoldServer::HoldServer(std::string name, int family)
    : name_(std::move(name)), server_(family, [this](ServerConnection& c) {
        {
          std::lock_guard lock(mutex_);
          open_fds_.insert(c.fd());
        }
        changed_.notify_all();
        if (c.write_all(name_ + "\n")) c.drain();
        {
          std::lock_guard lock(mutex_);
          open_fds_.erase(c.fd());  // before the fd is closed, so release_all never sees a stale one
        }
        changed_.notify_all();
      }) {}

std::size_t HoldServer::open() const {
  std::lock_guard lock(mutex_);
  return open_fds_.size();
}

bool HoldServer::wait_open(std::size_t count, Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return open_fds_.size() == count; });
}

void HoldServer::release_all() {
  std::lock_guard lock(mutex_);
  for (const int fd : open_fds_) ::shutdown(fd, SHUT_WR);
}

// ---- ReplyAfterEofServer ----

ReplyAfterEofServer::ReplyAfterEofServer(std::string reply, int family)
    : reply_(std::move(reply)), server_(family, [this](ServerConnection& c) {
        std::string request;
        std::vector<char> buffer(65536);
        for (;;) {
          const ssize_t n = c.read_some(buffer.data(), buffer.size());
          if (n < 0) return;
          if (n == 0) break;
          request.append(buffer.data(), static_cast<std::size_t>(n));
        }
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(std::move(request));
        }
        changed_.notify_all();
        c.write_all(reply_);
      }) {}

bool ReplyAfterEofServer::wait_request(std::string& request, Millis timeout) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return !requests_.empty(); })) return false;
  request = requests_.front();
  return true;
}

bool ReplyAfterEofServer::wait_requests(std::size_t count, Millis timeout, std::vector<std::string>& requests) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; })) return false;
  requests = requests_;
  return true;
}

// ---- ResetServer ----

ResetServer::ResetServer(std::size_t read_first, int family)
    : read_first_(read_first), server_(family, [this](ServerConnection& c) {
        std::vector<char> buffer(read_first_ + 1);
        std::size_t have = 0;
        while (have < read_first_) {
          const ssize_t n = c.read_some(buffer.data() + have, read_first_ - have);
          if (n <= 0) return;
          have += static_cast<std::size_t>(n);
        }
        c.reset();
      }) {}

// ---- EndRecorderServer ----

EndRecorderServer::EndRecorderServer(int family)
    : server_(family, [this](ServerConnection& c) {
        Record record;
        char buffer[16384];
        for (;;) {
          const ssize_t n = c.read_some(buffer, sizeof buffer);
          if (n > 0) {
            std::lock_guard lock(mutex_);
            record.bytes += static_cast<std::uint64_t>(n);
            received_ += static_cast<std::uint64_t>(n);
            changed_.notify_all();
            continue;
          }
          if (n == 0) {
            record.end = End::eof;
          } else {
            record.error = errno;
            record.end = errno == ECONNRESET ? End::reset : End::error;
          }
          break;
        }
        std::lock_guard lock(mutex_);
        records_.push_back(record);
        changed_.notify_all();
      }) {}

bool EndRecorderServer::wait_ended(std::size_t count, Millis timeout, std::vector<Record>& records) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return records_.size() >= count; })) return false;
  records.assign(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(count));
  return true;
}

bool EndRecorderServer::wait_received(std::uint64_t bytes, Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return received_ >= bytes; });
}

// ---- RefusedPort ----

RefusedPort::RefusedPort(int family)
    : fd_(bind_tcp_socket(Address::loopback(family))), address_(local_address(fd_.get())) {}

// ---- Blackhole ----

Blackhole::Blackhole(int family)
    : listen_fd_(bind_tcp_socket(Address::loopback(family))), address_(local_address(listen_fd_.get())) {
  if (::listen(listen_fd_.get(), 0) != 0) throw_errno("listen", errno);
  filler_ = Client::connect(address_, 1s);  // completes, then sits in the accept queue: it is full
}

bool Blackhole::verify(Millis timeout) const {
  Client probe;
  return Client::try_connect(address_, timeout, probe) == ETIMEDOUT;
}

}  // namespace sluice::it
