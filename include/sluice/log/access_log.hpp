#pragma once
// Process logging: the main log (spdlog, stdout, text or one JSON object per line) and the access
// log, one line per finished connection.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/common.h>

#include "sluice/config/config.hpp"

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
};

/// Installs the stdout loggers for `log` ("sluice" as default logger, "access" for access lines).
/// `level` overrides log.level when set.
void setup_logging(const LogConfig& log, std::optional<spdlog::level::level_enum> level);

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

/// One access line in `format`; a no-op unless setup_logging() enabled the access log.
void log_access(const AccessRecord& record);
bool access_log_enabled();

/// `text` as the inside of a JSON string (quotes, backslashes and control characters escaped).
std::string json_escape(std::string_view text);

}  // namespace sluice
