#include "sluice/log/logging.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "sluice/log/log_event.hpp"
#include "sluice/log/log_line_json.hpp"
#include "sluice/log/rate_limiter.hpp"

namespace sluice {

namespace {

// Lines the writer may trail behind by (each slot 408 bytes, allocated once: 3.3 MB): a burst of this
// many is absorbed; beyond, the oldest are dropped and counted.
constexpr std::size_t kQueueLines = 8192;

// The warnings a flood of clients or a dead backend repeats: limited per key, the key being the
// event and the names of what it is about (not the address, error or attempt, which vary).
constexpr std::array<std::string_view, 6> kLimitedEvents = {
    "connect_failed ", "connect_local_error ", "accept_error ", "accept_failed ", "bad_proxy_header ",
    "proxy_client_refused "};
constexpr std::array<std::string_view, 3> kKeyFields = {"service", "backend", "listener"};

// "%j": an application line's JSON members after time and level (log_line_json.hpp), so that
// format: json stays valid JSON whatever a line holds.
class JsonLineFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string members;
    append_line_json_members(members, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(members.data(), members.data() + members.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonLineFlag>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format, bool access) {
  if (format == LogFormat::json) {
    // One schema for both kinds: time (UTC, microseconds), level, event, then the fields. Access
    // lines come with their fields already written as JSON members (access_log.cpp).
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    constexpr std::string_view common = R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",)";
    formatter->add_flag<JsonLineFlag>('j').set_pattern(std::string(common) +
                                                       (access ? R"("event":"access",%v})" : "%j}"));
    return formatter;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->set_pattern(access ? "%Y-%m-%dT%H:%M:%S.%e%z access %v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  return formatter;
}

// The limiter's key of a line, or empty when the line is not one of the limited warnings.
std::string limit_key(spdlog::level::level_enum level, std::string_view text) {
  if (level < spdlog::level::warn) return {};
  std::string key;
  for (std::string_view event : kLimitedEvents) {
    if (text.starts_with(event)) key = event.substr(0, event.size() - 1);
  }
  if (key.empty()) return key;
  for (std::string_view field : kKeyFields) {
    const std::string_view value = find_field(text, field);
    if (value.empty()) continue;
    key += ' ';
    key += field;
    key += '=';
    key += value;
  }
  return key;
}

std::uint64_t steady_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// The default logger: limits the repeated warnings, then hands every line to `target` (the
// asynchronous logger, or after stop_logging() a synchronous one on the same sink).
class LimitingLogger final : public spdlog::logger {
 public:
  explicit LimitingLogger(spdlog::logger* target) : spdlog::logger("sluice"), target_(target) {}

  void retarget(spdlog::logger* target) { target_.store(target); }
  spdlog::logger* target() const { return target_.load(); }

  /// Writes the `log_suppressed` lines of the keys taken from the limiter.
  void report(bool all) {
    std::vector<RateLimiter::Suppressed> expired;
    {
      std::lock_guard lock(mutex_);
      expired = limiter_.take_expired(steady_ms(), all);
    }
    for (const auto& item : expired) write_suppressed(spdlog::level::warn, item.key, item.lines);
  }
  std::uint64_t suppressed_total() {
    std::lock_guard lock(mutex_);
    return limiter_.suppressed_total();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    if (const std::string key = limit_key(msg.level, text); !key.empty()) {
      RateLimiter::Verdict verdict;
      {
        std::lock_guard lock(mutex_);  // a map lookup, never held across I/O
        verdict = limiter_.admit(key, steady_ms());
      }
      if (!verdict.log) return;
      if (verdict.suppressed_before != 0) write_suppressed(msg.level, key, verdict.suppressed_before);
    }
    target()->log(msg.time, msg.source, msg.level, msg.payload);
  }
  void flush_() override { target()->flush(); }

 private:
  void write_suppressed(spdlog::level::level_enum level, const std::string& key, std::uint64_t lines) {
    const std::string text = event_text("log_suppressed", {{"lines", lines}, {"key", key}});
    target()->log(level, spdlog::string_view_t(text.data(), text.size()));
  }

  std::atomic<spdlog::logger*> target_;
  std::mutex mutex_;
  RateLimiter limiter_;
};

struct Loggers {
  std::shared_ptr<spdlog::details::thread_pool> pool;  // the writer thread and its queue
  std::shared_ptr<spdlog::logger> main_async;
  std::shared_ptr<spdlog::logger> main_sync;
  std::shared_ptr<spdlog::logger> access_async;
  std::shared_ptr<spdlog::logger> access_sync;
  std::shared_ptr<LimitingLogger> main;
  std::atomic<spdlog::logger*> access{nullptr};
  std::atomic<std::uint64_t> dropped_at_stop{0};
};

// Made once and then only adjusted (formatter, level, on/off), all of which is thread-safe, so
// that a reload on the main thread never swaps a logger under a worker thread writing to it.
Loggers g_loggers;
std::mutex g_setup_mutex;
std::atomic<bool> g_access_enabled{false};
std::atomic<LogFormat> g_format{LogFormat::text};

void create_loggers() {
  Loggers& l = g_loggers;
  // A sink each (a sink has one formatter); each line is one fwrite and a flush, by the writer.
  auto main_sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto access_sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  l.pool = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
  l.main_async = std::make_shared<spdlog::async_logger>("sluice", main_sink, l.pool,
                                                        spdlog::async_overflow_policy::overrun_oldest);
  l.access_async = std::make_shared<spdlog::async_logger>("access", access_sink, l.pool,
                                                          spdlog::async_overflow_policy::overrun_oldest);
  l.main_sync = std::make_shared<spdlog::logger>("sluice", main_sink);
  l.access_sync = std::make_shared<spdlog::logger>("access", access_sink);
  for (auto* logger : {&l.main_async, &l.access_async, &l.main_sync, &l.access_sync})
    (*logger)->set_level(spdlog::level::trace);  // the level is the default logger's
  l.main = std::make_shared<LimitingLogger>(l.main_async.get());
  l.access.store(l.access_async.get());
  spdlog::set_default_logger(l.main);
  std::atexit(stop_logging);
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
  std::lock_guard lock(g_setup_mutex);
  if (!g_loggers.main) create_loggers();
  // The sinks are shared by the asynchronous and synchronous loggers: set once through each pair.
  g_loggers.main_async->set_formatter(make_formatter(log.format, false));
  g_loggers.access_async->set_formatter(make_formatter(log.format, true));
  g_loggers.main->set_level(level.value_or(parse_log_level(log.level).value_or(spdlog::level::info)));
  g_format = log.format;
  g_access_enabled = log.access_log;
}

void report_suppressed_log_lines() {
  if (auto main = g_loggers.main) main->report(false);
}

void stop_logging() {
  std::lock_guard lock(g_setup_mutex);
  Loggers& l = g_loggers;
  if (!l.pool) return;
  l.main->report(true);
  // The pool's destructor lets the writer finish the queue, then joins it. Lines logged after this
  // go straight to the sink.
  l.dropped_at_stop = l.pool->overrun_counter();
  l.main->retarget(l.main_sync.get());
  l.access.store(l.access_sync.get());
  // The asynchronous loggers stay: a thread that took one just before the switch may still call it.
  l.pool.reset();
}

LogCounters log_counters() {
  LogCounters counters;
  {
    std::lock_guard lock(g_setup_mutex);
    counters.dropped = g_loggers.pool ? g_loggers.pool->overrun_counter() : g_loggers.dropped_at_stop.load();
  }
  if (auto main = g_loggers.main) counters.suppressed = main->suppressed_total();
  return counters;
}

spdlog::logger* access_logger() { return g_loggers.access.load(); }
bool access_log_enabled() { return g_access_enabled.load(std::memory_order_relaxed); }
LogFormat log_format() { return g_format.load(std::memory_order_relaxed); }

}  // namespace sluice
