#include "sluice/log/access_log.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace sluice {

namespace {

std::string seconds_text(double seconds) {
  if (seconds < 0) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  return buffer;
}

std::string json_text(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void log_access(const AccessRecord& r) {
  if (!access_log_enabled()) return;
  spdlog::logger* logger = access_logger();
  if (logger == nullptr) return;
  if (log_format() == LogFormat::json) {
    // Seconds to the microsecond, as the text format writes them; a step never taken is null.
    auto number = [](double seconds) -> nlohmann::ordered_json {
      if (seconds < 0) return nullptr;
      return std::round(seconds * 1e6) / 1e6;
    };
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    nlohmann::ordered_json line;
    line["time"] = static_cast<double>(micros) / 1e6;
    line["client"] = r.client;
    line["listener"] = r.listener;
    line["service"] = r.service;
    line["backend"] = r.backend;
    line["node"] = r.node;
    line["queue_wait_seconds"] = number(r.queue_wait_seconds);
    line["connect_seconds"] = number(r.connect_seconds);
    line["duration_seconds"] = number(r.duration_seconds);
    line["bytes_from_client"] = r.bytes_from_client;
    line["bytes_from_backend"] = r.bytes_from_backend;
    line["end"] = r.end_reason;
    if (r.http) {
      line["method"] = r.method;
      line["path"] = r.path;
      line["status"] = r.status;
    }
    logger->info("{}", json_text(line));
    return;
  }
  if (r.http) {
    logger->info("client={} listener={} service={} backend={} node={} method={} path={} status={} queue_wait={} "
                 "connect={} duration={} end={}",
                 r.client, r.listener, r.service, r.backend.empty() ? "-" : r.backend, r.node.empty() ? "-" : r.node,
                 r.method, r.path, r.status, seconds_text(r.queue_wait_seconds), seconds_text(r.connect_seconds),
                 seconds_text(r.duration_seconds), r.end_reason);
    return;
  }
  logger->info(
      "client={} listener={} service={} backend={} node={} queue_wait={} connect={} duration={} "
      "bytes_from_client={} bytes_from_backend={} end={}",
      r.client, r.listener, r.service, r.backend.empty() ? "-" : r.backend,
      r.node.empty() ? "-" : r.node, seconds_text(r.queue_wait_seconds),
      seconds_text(r.connect_seconds), seconds_text(r.duration_seconds), r.bytes_from_client,
      r.bytes_from_backend, r.end_reason);
}

std::string json_escape(std::string_view text) {
  const std::string quoted = json_text(std::string(text));
  return quoted.substr(1, quoted.size() - 2);
}

}  // namespace sluice
