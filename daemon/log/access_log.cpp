#include "sluice/log/access_log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace sluice {

namespace {

// Made once and then only adjusted (formatter, level, on/off), all of which is thread-safe, so that
// a reload on the main thread never swaps a logger under a worker thread that is writing to it.
std::shared_ptr<spdlog::logger> g_main;
std::shared_ptr<spdlog::logger> g_access;
std::atomic<bool> g_access_enabled{false};
std::atomic<LogFormat> g_format{LogFormat::text};

// "%j": the log message escaped for a JSON string, so format: json stays valid JSON whatever
// an error text contains.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string escaped = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format, bool access) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (format == LogFormat::json) {
    // Access lines are whole JSON objects already; other lines are wrapped in one.
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        access ? "%v" : R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","message":"%j"})");
  } else {
    formatter->set_pattern(access ? "%Y-%m-%dT%H:%M:%S.%e%z access %v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  }
  return formatter;
}

std::string seconds_text(double seconds) {
  if (seconds < 0) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  return buffer;
}

// Wall-clock time as Unix seconds with microseconds, e.g. "1795502459.660123".
std::string unix_time_text() {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%lld.%06lld", static_cast<long long>(micros / 1000000),
                static_cast<long long>(micros % 1000000));
  return buffer;
}

}  // namespace

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return std::nullopt;
}

void setup_logging(const LogConfig& log, std::optional<spdlog::level::level_enum> level) {
  if (!g_main) {
    // A sink each (a sink has one formatter); each line is one fwrite, which stdio keeps whole.
    g_main = std::make_shared<spdlog::logger>("sluice", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    g_main->flush_on(spdlog::level::trace);  // stdout is usually a pipe to a collector
    spdlog::set_default_logger(g_main);
    g_access = std::make_shared<spdlog::logger>("access", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    g_access->flush_on(spdlog::level::trace);
  }
  g_main->set_formatter(make_formatter(log.format, false));
  g_main->set_level(level.value_or(parse_log_level(log.level).value_or(spdlog::level::info)));
  g_access->set_formatter(make_formatter(log.format, true));
  g_format = log.format;
  g_access_enabled = log.access_log;
}

bool access_log_enabled() { return g_access_enabled.load(std::memory_order_relaxed); }

void log_access(const AccessRecord& r) {
  if (!access_log_enabled()) return;
  if (g_format.load(std::memory_order_relaxed) == LogFormat::json) {
    auto quoted = [](std::string_view text) {
      std::string out(1, '"');
      out += json_escape(text);
      out += '"';
      return out;
    };
    auto number = [](double seconds) { return seconds < 0 ? std::string("null") : seconds_text(seconds); };
    g_access->info(
        R"({{"time":{},"client":{},"listener":{},"service":{},"backend":{},"node":{},"queue_wait_seconds":{},"connect_seconds":{},"duration_seconds":{},"bytes_from_client":{},"bytes_from_backend":{},"end":{}}})",
        unix_time_text(),
        quoted(r.client), quoted(r.listener), quoted(r.service), quoted(r.backend), quoted(r.node),
        number(r.queue_wait_seconds), number(r.connect_seconds), seconds_text(r.duration_seconds),
        r.bytes_from_client, r.bytes_from_backend, quoted(r.end_reason));
    return;
  }
  g_access->info(
      "client={} listener={} service={} backend={} node={} queue_wait={} connect={} duration={} "
      "bytes_from_client={} bytes_from_backend={} end={}",
      r.client, r.listener, r.service, r.backend.empty() ? "-" : r.backend,
      r.node.empty() ? "-" : r.node, seconds_text(r.queue_wait_seconds),
      seconds_text(r.connect_seconds), seconds_text(r.duration_seconds), r.bytes_from_client,
      r.bytes_from_backend, r.end_reason);
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned char>(c));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace sluice
