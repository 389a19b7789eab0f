// HTTP/1.1 responses as sluice-loadgen reads them, with the daemon's HTTP parser (sluice/http/): no
// libuv. A response with neither Content-Length nor chunked framing is complete at the peer's EOF. From a sluice-backend body "backend=NAME node=NODE" the backend and node are taken, and
// from its X-Service-Ns / X-Backend-Wait-Ns / X-Service-Elapsed-Ns headers its own timings.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::tools {

struct HttpResponse {
  int status = 0;
  std::string backend;                   // empty when the body is not "backend=NAME node=NODE"
  std::string node;
  std::int64_t service_ns = -1;          // X-Service-Ns, or -1
  std::int64_t backend_wait_ns = -1;     // X-Backend-Wait-Ns, or -1
  std::int64_t service_elapsed_ns = -1;  // X-Service-Elapsed-Ns, or -1
  bool close = false;                    // "Connection: close"
};

enum class ResponseParse { incomplete, complete, malformed };

// Takes one complete response off the front of `buffer` into `out`. At the peer's EOF pass
// `at_eof = true`: a response without Content-Length then ends with the buffer.
ResponseParse take_response(std::string& buffer, HttpResponse& out, bool at_eof = false);

// "backend=NAME node=NODE" (trailing newline optional) into its two names; false otherwise.
bool parse_backend_body(std::string_view body, std::string& backend, std::string& node);

}  // namespace sluice::tools
