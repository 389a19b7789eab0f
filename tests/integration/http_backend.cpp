#include "http_backend.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "sluice/http/forwarding.hpp"

namespace sluice::it {

namespace {

namespace http = sluice::http;

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

// A 200 with `body`, framed with Content-Length or chunked (in 64 KiB chunks).
bool answer(ServerConnection& c, const std::string& body, bool chunked, bool close) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
  head += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) head += "Connection: close\r\n";
  if (!c.write_all(head + "\r\n")) return false;
  if (!chunked) return c.write_all(body);
  constexpr std::size_t kChunk = 64 * 1024;
  for (std::size_t at = 0; at < body.size(); at += kChunk) {
    const std::string_view piece = std::string_view(body).substr(at, kChunk);
    if (!c.write_all(http::chunk_size_line(piece.size())) || !c.write_all(piece) || !c.write_all("\r\n")) return false;
  }
  return c.write_all(http::last_chunk({}));
}

std::string head_lines(const http::MessageHead& head) {
  std::string out = head.method + " " + head.target + "\n";
  for (const http::Header& header : head.headers) out += header.name + ": " + header.value + "\n";
  return out;
}

}  // namespace

HttpTestBackend::HttpTestBackend(int family) : server_(family, [this](ServerConnection& c) { serve(c); }) {}

std::vector<http::MessageHead> HttpTestBackend::heads() const {
  std::lock_guard lock(mutex_);
  return heads_;
}

void HttpTestBackend::serve(ServerConnection& c) {
  http::MessageReader reader(http::Kind::request, http::Limits{64 * 1024});
  std::vector<char> buffer(256 * 1024);
  std::string pending;  // bytes after an upgrade request
  std::string unanswered;  // raw bytes of the request being read (for /continue)
  bool continued = false;  // its 100 Continue was sent
  int served = 0;
  for (;;) {
    const ssize_t n = c.read_some(buffer.data(), buffer.size());
    if (n <= 0) return;
    const std::string_view bytes(buffer.data(), static_cast<std::size_t>(n));
    const http::Fed fed = reader.feed(bytes);
    if (fed.stop == http::Stop::error) return;
    unanswered.append(bytes);
    // /continue: 100 Continue once the head is in and before the body (the client waits for it).
    if (reader.messages().empty() && starts_with(unanswered, "POST /continue") &&
        unanswered.find("\r\n\r\n") != std::string::npos && unanswered.find("100-continue") != std::string::npos &&
        !continued) {
      if (!c.write_all("HTTP/1.1 100 Continue\r\n\r\n")) return;
      continued = true;
    }
    if (!reader.messages().empty()) {
      unanswered.clear();
      continued = false;
    }
    if (fed.stop == http::Stop::upgrade) pending.assign(bytes.substr(fed.consumed));
    while (!reader.messages().empty()) {
      const http::Message request = std::move(reader.messages().front());
      reader.messages().pop_front();
      ++requests_;
      ++served;
      {
        std::lock_guard lock(mutex_);
        heads_.push_back(request.head);
      }
      const std::string_view path = request.head.target;
      const bool close = !request.head.keep_alive;
      if (starts_with(path, "/close")) return;
      if (starts_with(path, "/silent")) {
        c.drain();
        return;
      }
      if (starts_with(path, "/flaky") && served > 1) return;
      if (starts_with(path, "/upgrade")) {
        if (!c.write_all("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")) return;
        if (!c.write_all(pending)) return;
        for (;;) {
          const ssize_t m = c.read_some(buffer.data(), buffer.size());
          if (m <= 0) break;
          if (!c.write_all(std::string_view(buffer.data(), static_cast<std::size_t>(m)))) return;
        }
        c.shutdown_write();
        return;
      }
      bool ok = true;
      if (starts_with(path, "/status/")) {
        // 204 and 304 without a body (304 with the representation's Content-Length), others with one.
        const int status = std::stoi(std::string(path.substr(8, 3)));
        std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
        if (status == 204) {
          out += "No Content\r\n\r\n";
        } else if (status == 304) {
          out += "Not Modified\r\nETag: \"v1\"\r\nContent-Length: 12\r\n\r\n";
        } else {
          out += (status == 418 ? "I'm a teapot" : "Whatever") + std::string("\r\nContent-Length: 7\r\n\r\nteapot\n");
        }
        ok = c.write_all(out);
      } else if (starts_with(path, "/continue") || starts_with(path, "/echo")) {
        ok = answer(c, request.body, request.head.framing == http::Framing::chunked, close);
      } else if (starts_with(path, "/headers")) {
        ok = answer(c, head_lines(request.head), false, close);
      } else {
        ok = answer(c, starts_with(path, "/flaky") ? "fine\n" : "ok\n", false, close);
      }
      if (!ok || close || starts_with(path, "/bye")) return;
    }
  }
}

RunningBackend start_listening_process(Command command, const std::string& prefix, Millis timeout) {
  RunningBackend backend;
  backend.process = std::make_unique<DaemonProcess>(std::move(command));
  const auto line = backend.process->wait_for_line(prefix, timeout);
  if (!line) throw std::runtime_error("no line: " + prefix);
  backend.address = Address{"127.0.0.1", static_cast<std::uint16_t>(std::stoi(line->substr(line->find(prefix) + prefix.size())))};
  return backend;
}

bool ResponseProgress::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const http::Fed fed = parser_.feed(bytes);
    if (fed.stop == http::Stop::error) return false;
    if (fed.stop == http::Stop::upgrade) return true;
    bytes.remove_prefix(fed.consumed);
  }
  return true;
}

std::string read_available(Client& client, Millis timeout, bool* reset) {
  const auto deadline = Clock::now() + timeout;
  std::vector<char> buffer(256 * 1024);
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error("read: nothing before the deadline");
    pollfd fd{client.fd(), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(client.fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n >= 0) return std::string(buffer.data(), static_cast<std::size_t>(n));
    if (errno == EAGAIN || errno == EINTR) continue;
    if (errno == ECONNRESET && reset != nullptr) {
      *reset = true;
      return {};
    }
    throw std::runtime_error(std::string("read: ") + std::strerror(errno));
  }
}

http::Message read_http_response(Client& client, Millis timeout, bool response_to_head) {
  const auto deadline = Clock::now() + timeout;
  http::MessageReader reader(http::Kind::response);
  reader.parser().expect_response_to_head(response_to_head);
  std::vector<char> buffer(256 * 1024);
  while (reader.messages().empty()) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error("http: no whole response before the deadline");
    pollfd fd{client.fd(), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(client.fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) throw std::runtime_error(n == 0 ? "http: EOF before the response's end" : "http: read failed");
    const http::Fed fed = reader.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    if (fed.stop == http::Stop::error) throw std::runtime_error("http: malformed response: " + reader.parser().error().reason);
    if (fed.consumed != static_cast<std::size_t>(n)) throw std::runtime_error("http: bytes after the response");
  }
  return std::move(reader.messages().front());
}

}  // namespace sluice::it
