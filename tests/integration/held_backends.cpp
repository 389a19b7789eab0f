#include "held_backends.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <string_view>

#include "data.hpp"
#include "sluice/http/message.hpp"

namespace sluice::it {

namespace {

// Whether the peer closed or reset the connection (bytes waiting to be read do not count).
bool peer_gone(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

HeldBackends::HeldBackends(int count) {
  for (int i = 0; i < count; ++i) {
    servers_.push_back(std::make_unique<TcpServer>(AF_INET, [this](ServerConnection& c) { serve(c); }));
  }
}

HeldBackends::~HeldBackends() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& server : servers_) server->stop();
}

std::string HeldBackends::answer_body(const std::string& path) {
  if (path.rfind("/big/", 0) == 0) return pattern(std::stoul(path.substr(5)), 7);
  return "response to " + path + "\n";
}

int HeldBackends::holding() const {
  std::lock_guard lock(mutex_);
  return holding_;
}

int HeldBackends::max_holding() const {
  std::lock_guard lock(mutex_);
  return max_holding_;
}

std::vector<std::string> HeldBackends::arrived() const {
  std::lock_guard lock(mutex_);
  return arrived_;
}

bool HeldBackends::wait_holding(int n, Millis timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return holding_ == n; });
}

bool HeldBackends::wait_arrived(std::size_t n, Millis timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return arrived_.size() >= n; });
}

int HeldBackends::abandoned() const {
  std::lock_guard lock(mutex_);
  return abandoned_;
}

void HeldBackends::release(const std::string& path) {
  {
    std::lock_guard lock(mutex_);
    released_.insert(path);
  }
  changed_.notify_all();
}

void HeldBackends::serve(ServerConnection& c) {
  sluice::http::MessageReader reader(sluice::http::Kind::request);
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const ssize_t n = c.read_some(buffer.data(), buffer.size());
    if (n <= 0) return;
    if (reader.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n))).stop == sluice::http::Stop::error) {
      return;
    }
    while (!reader.messages().empty()) {
      const sluice::http::Message request = std::move(reader.messages().front());
      reader.messages().pop_front();
      const std::string path = request.head.target;
      std::unique_lock lock(mutex_);
      arrived_.push_back(path);
      max_holding_ = std::max(max_holding_, ++holding_);
      changed_.notify_all();
      // Held until released; a connection Sluice closes meanwhile is abandoned.
      while (released_.count(path) == 0 && !stopping_) {
        if (changed_.wait_for(lock, 10ms, [&] { return released_.count(path) != 0 || stopping_; })) break;
        if (peer_gone(c.fd())) {
          --holding_;
          ++abandoned_;
          changed_.notify_all();
          return;
        }
      }
      --holding_;
      changed_.notify_all();
      if (stopping_) return;
      lock.unlock();
      const std::string body = answer_body(path);
      std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
      if (!request.head.keep_alive) head += "Connection: close\r\n";
      if (!c.write_all(head + "\r\n")) return;
      constexpr std::size_t kPiece = 16 * 1024;
      for (std::size_t at = 0; at < body.size(); at += kPiece) {
        const std::string_view piece = std::string_view(body).substr(at, kPiece);
        if (!c.write_all(piece)) return;
      }
      if (!request.head.keep_alive) return;
    }
  }
}

}  // namespace sluice::it
