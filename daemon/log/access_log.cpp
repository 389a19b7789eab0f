#include "sluice/log/access_log.hpp"

#include <cstdio>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "sluice/log/json_text.hpp"

namespace sluice {

namespace {

std::string seconds_text(double seconds) {
  if (seconds < 0) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  return buffer;
}

// Appends `,"key":` (no comma before the first member).
void append_key(std::string& out, std::string_view key) {
  if (!out.empty()) out += ',';
  out += '"';
  out += key;  // a fixed name: nothing to escape
  out += "\":";
}

void append_string(std::string& out, std::string_view key, std::string_view value) {
  append_key(out, key);
  append_json_string(out, value);
}

// A name or word that may be absent ("" or "-"): null then.
void append_optional(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty() || value == "-") {
    append_key(out, key);
    out += "null";
  } else {
    append_string(out, key, value);
  }
}

// Seconds to the microsecond, as the text format writes them; a step never taken is null.
void append_seconds(std::string& out, std::string_view key, double seconds) {
  append_key(out, key);
  if (seconds < 0) {
    out += "null";
  } else {
    fmt::format_to(std::back_inserter(out), "{:.6f}", seconds);
  }
}

void append_number(std::string& out, std::string_view key, std::uint64_t number) {
  append_key(out, key);
  fmt::format_to(std::back_inserter(out), "{}", number);
}

// The access line's members after time, level and event (the formatter writes those).
std::string json_members(const AccessRecord& r) {
  std::string out;
  out.reserve(384);
  append_string(out, "client", r.client);
  append_string(out, "listener", r.listener);
  append_string(out, "service", r.service);
  append_optional(out, "backend", r.backend);
  append_optional(out, "node", r.node);
  append_seconds(out, "queue_wait_seconds", r.queue_wait_seconds);
  append_seconds(out, "connect_seconds", r.connect_seconds);
  append_seconds(out, "duration_seconds", r.duration_seconds);
  if (!r.http) {  // mode: http counts no bytes per request, and a 0 would read as a measurement
    append_number(out, "bytes_from_client", r.bytes_from_client);
    append_number(out, "bytes_from_backend", r.bytes_from_backend);
  }
  append_string(out, "end", r.end_reason);
  if (r.http) {
    append_optional(out, "method", r.method);
    append_optional(out, "path", r.path);
    append_number(out, "status", static_cast<std::uint64_t>(r.status));
  }
  return out;
}

}  // namespace

void log_access(const AccessRecord& r) {
  if (!access_log_enabled()) return;
  spdlog::logger* logger = access_logger();
  if (logger == nullptr) return;
  if (log_format() == LogFormat::json) {
    const std::string members = json_members(r);
    logger->info(spdlog::string_view_t(members.data(), members.size()));
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

}  // namespace sluice
