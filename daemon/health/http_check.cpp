#include "sluice/health/http_check.hpp"

namespace sluice {

std::string http_check_request(const HttpCheckConfig& config, const Endpoint& backend) {
  const std::string host = config.host.empty() ? backend.to_string() : config.host;
  return "GET " + config.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n";
}

HttpCheckReader::HttpCheckReader(StatusRange expect) : expect_(expect), parser_(http::Kind::response, *this) {}

http::Action HttpCheckReader::on_head(const http::MessageHead& head) {
  // 100 Continue, 103 Early Hints: the final response follows on the same connection. 101 is
  // final (the connection is no longer HTTP).
  if (head.status / 100 == 1 && head.status != 101) return http::Action::proceed;
  status_ = head.status;
  if (expect_.contains(status_)) {
    outcome_ = Outcome::passed;
  } else {
    fail("HTTP " + std::to_string(status_));
  }
  return http::Action::pause;  // decided: the body is not read
}

HttpCheckReader::Outcome HttpCheckReader::feed(std::string_view bytes) {
  if (outcome_ != Outcome::pending) return outcome_;
  received_ = received_ || !bytes.empty();
  while (outcome_ == Outcome::pending) {
    const http::Fed fed = parser_.feed(bytes);
    bytes.remove_prefix(fed.consumed);
    if (fed.stop == http::Stop::error) {
      const http::Error& error = parser_.error();
      return fail(error.kind == http::ErrorKind::head_too_large ? "response " + error.reason
                                                                : "invalid HTTP response: " + error.reason);
    }
    // An interim response ended: go on with what follows it; otherwise everything was used.
    if (fed.stop != http::Stop::message_end) break;
  }
  return outcome_;
}

HttpCheckReader::Outcome HttpCheckReader::closed() {
  if (outcome_ != Outcome::pending) return outcome_;
  return fail(received_ ? "connection closed in the response head" : "connection closed before a status line");
}

HttpCheckReader::Outcome HttpCheckReader::fail(std::string reason) {
  outcome_ = Outcome::failed;
  reason_ = std::move(reason);
  return outcome_;
}

}  // namespace sluice
