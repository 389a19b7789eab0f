#include "http_status_server.hpp"

#include <string>

#include "sluice/http/message.hpp"
#include "sluice/http/response.hpp"

namespace sluice::it {

HttpStatusServer::HttpStatusServer(int status, int family)
    : status_(status), server_(family, [this](ServerConnection& c) { serve(c); }) {}

void HttpStatusServer::serve(ServerConnection& connection) {
  sluice::http::MessageReader reader(sluice::http::Kind::request);
  char buffer[4096];
  while (reader.messages().empty()) {
    const ssize_t n = connection.read_some(buffer, sizeof buffer);
    if (n <= 0) return;
    if (reader.feed(std::string_view(buffer, static_cast<std::size_t>(n))).stop == sluice::http::Stop::error) return;
  }
  int status = 0;
  {
    std::lock_guard lock(mutex_);
    heads_.push_back(reader.messages().front().head);
    status = status_;
  }
  changed_.notify_all();
  const std::string body = std::to_string(status) + "\n";
  connection.write_all(sluice::http::response_head(status, "text/plain", body.size(), "Connection: close\r\n") + body);
}

void HttpStatusServer::set_status(int status) {
  std::lock_guard lock(mutex_);
  status_ = status;
}

bool HttpStatusServer::wait_requests(std::size_t count, Millis timeout, std::vector<sluice::http::MessageHead>& heads) {
  std::unique_lock lock(mutex_);
  const bool reached = changed_.wait_for(lock, timeout, [&] { return heads_.size() >= count; });
  heads = heads_;
  return reached;
}

std::size_t HttpStatusServer::requests() const {
  std::lock_guard lock(mutex_);
  return heads_.size();
}

}  // namespace sluice::it
