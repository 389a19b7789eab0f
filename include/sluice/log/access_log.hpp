#pragma once
// The access log: one line per finished connection, through the access logger (logging.hpp).

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/log/logging.hpp"

namespace sluice {

/// What one finished connection did. Times in seconds; negative = that step never happened.
struct AccessRecord {
  std::string_view client;     // "ip:port"
  std::string_view listener;
  std::string_view service;
  std::string_view backend;    // "" when none was reached
  std::string_view node;
  double queue_wait_seconds = -1;
  double connect_seconds = -1;
  double duration_seconds = 0;  // accept to close
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_from_backend = 0;
  std::string_view end_reason;  // client_close, backend_close, reset, idle_timeout, ...
  // mode: http, one line per request, also one refused before its head was read ("-" for the
  // method and path then)
  bool http = false;
  std::string_view method;
  std::string_view path;
  int status = 0;               // 0: no response (the request failed before one)
};

/// One access line in log.format; a no-op unless setup_logging() enabled the access log.
void log_access(const AccessRecord& record);

}  // namespace sluice
