#pragma once
// What an HTTP health check sends and how it reads the answer. Pure (no sockets): HealthChecker
// writes the request and feeds what the backend sends to an HttpCheckReader, which decides at the
// first final status (1xx interim responses are skipped) whether the check passed, and says why not.

#include <string>
#include <string_view>

#include "sluice/config/config.hpp"
#include "sluice/http/parser.hpp"

namespace sluice {

/// "GET <path> HTTP/1.1" with Host (the configured one, else the backend's configured address),
/// User-Agent and `Connection: close`.
std::string http_check_request(const HttpCheckConfig& config, const Endpoint& backend);

class HttpCheckReader final : private http::Handler {
 public:
  enum class Outcome { pending, passed, failed };

  explicit HttpCheckReader(StatusRange expect);

  /// Bytes from the backend, as they arrive. Once decided, the rest is ignored.
  Outcome feed(std::string_view bytes);
  /// The backend closed its side: undecided, the check fails.
  Outcome closed();

  Outcome outcome() const { return outcome_; }
  /// Why the check failed ("HTTP 503", "connection closed before a status line", ...); empty
  /// otherwise.
  const std::string& reason() const { return reason_; }
  /// The final status read, 0 before one.
  int status() const { return status_; }

 private:
  http::Action on_head(const http::MessageHead& head) override;
  Outcome fail(std::string reason);

  StatusRange expect_;
  http::Parser parser_;
  Outcome outcome_ = Outcome::pending;
  std::string reason_;
  int status_ = 0;
  bool received_ = false;  // some byte arrived
};

}  // namespace sluice
