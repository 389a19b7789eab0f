#pragma once
// Process logging: the main log and the access log on stdout, as text or one JSON object per line.
//
// Off the data path's critical section: every line is formatted by the thread that logs it and
// queued (a bounded queue, a lock held only to enqueue) for one writer thread, which does the
// write(2). A full queue drops its oldest line rather than make a loop wait; dropped lines are
// counted. Warnings that a flood repeats (a failed connect per backend, an accept error per
// listener) are written at most once per key per second; the rest are suppressed and counted,
// and one line says how many.

#include <cstdint>
#include <optional>
#include <string_view>

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include "sluice/config/config.hpp"

namespace sluice {

/// Installs (first call) or adjusts (a reload) the loggers for `log`: "sluice" as the default
/// logger and "access" for access lines. `level` overrides log.level when set. The first call also
/// registers stop_logging() to run at exit.
void setup_logging(const LogConfig& log, std::optional<spdlog::level::level_enum> level);

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

/// Writes one `log_suppressed` line for each key whose second is over with lines suppressed in
/// it. The control plane calls it every second.
void report_suppressed_log_lines();

/// Reports what is still suppressed, writes every queued line and stops the writer thread; lines
/// logged later are written at once. At exit, so that no line is lost at SIGTERM.
void stop_logging();

struct LogCounters {
  std::uint64_t dropped = 0;     // lines lost to a full queue
  std::uint64_t suppressed = 0;  // repeated warnings not written
};
LogCounters log_counters();

/// The access logger and its settings (access_log.cpp writes the lines).
spdlog::logger* access_logger();
bool access_log_enabled();
LogFormat log_format();

}  // namespace sluice
