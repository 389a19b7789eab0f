#include "sluice/metrics/process_metrics.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sluice/log/logging.hpp"

namespace sluice {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The fields of /proc/self/stat that we need (proc(5) numbering).
struct ProcStat {
  unsigned long utime_ticks = 0;           // (14) user CPU
  unsigned long stime_ticks = 0;           // (15) system CPU
  unsigned long long starttime_ticks = 0;  // (22) since boot
  unsigned long vsize_bytes = 0;           // (23)
  long rss_pages = 0;                      // (24)
};

// A small /proc file, read with stdio: with the descriptors exhausted the open fails cleanly
// (std::ifstream's failure path trips UBSan's vptr check in libstdc++).
std::optional<std::string> read_proc_file(const char* path) {
  std::FILE* file = std::fopen(path, "re");
  if (file == nullptr) return std::nullopt;
  std::string text;
  char chunk[4096];
  while (std::size_t n = std::fread(chunk, 1, sizeof chunk, file)) text.append(chunk, n);
  std::fclose(file);
  return text;
}

std::optional<ProcStat> read_proc_stat() {
  const std::optional<std::string> text = read_proc_file("/proc/self/stat");
  if (!text) return std::nullopt;
  const std::string line = text->substr(0, text->find('\n'));
  // Field 2, the command name, is in parentheses and may hold spaces and ')': skip past the last
  // ')'. What follows starts with field 3 (state).
  const auto end_of_comm = line.rfind(')');
  if (end_of_comm == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(end_of_comm + 1));
  std::string skip;
  for (int field = 3; field <= 13; ++field) fields >> skip;
  ProcStat stat;
  fields >> stat.utime_ticks >> stat.stime_ticks;
  for (int field = 16; field <= 21; ++field) fields >> skip;
  fields >> stat.starttime_ticks >> stat.vsize_bytes >> stat.rss_pages;
  if (!fields) return std::nullopt;
  return stat;
}

// Boot time in seconds since the epoch ("btime" in /proc/stat).
std::optional<double> read_boot_time_seconds() {
  const std::optional<std::string> text = read_proc_file("/proc/stat");
  if (!text) return std::nullopt;
  std::istringstream file(*text);
  std::string key;
  while (file >> key) {
    if (key == "btime") {
      double seconds = 0;
      if (file >> seconds) return seconds;
      return std::nullopt;
    }
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

// Descriptors open now, not counting the one this listing itself holds. Raw system calls: the
// control thread lists descriptors that the workers' threads open and close, and libuv closes its
// sockets behind the C library's back, so ThreadSanitizer would take a reused descriptor number for
// a race on the descriptor.
std::optional<double> count_open_fds() {
  const long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  double count = 0;
  alignas(8) char buffer[4096];
  for (;;) {
    const long bytes = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (bytes <= 0) break;
    for (long offset = 0; offset < bytes;) {
      // struct linux_dirent64: u64 inode, s64 offset, u16 record length, u8 type, then the name.
      unsigned short length = 0;
      std::memcpy(&length, buffer + offset + 16, sizeof length);
      const std::string_view name(buffer + offset + 19);
      if (name != "." && name != ".." && name != std::to_string(fd)) ++count;
      offset += length;
    }
  }
  syscall(SYS_close, fd);
  return count;
}

MetricFamily single(const char* name, const char* help, MetricType type, double value) {
  ClientMetric sample;
  if (type == MetricType::Counter) {
    sample.counter.value = value;
  } else {
    sample.gauge.value = value;
  }
  return {name, help, type, {std::move(sample)}};
}

}  // namespace

std::vector<MetricFamily> collect_process_metrics() {
  std::vector<MetricFamily> families;
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (const auto stat = read_proc_stat()) {
    families.push_back(
        single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               MetricType::Counter,
               static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second));
    families.push_back(
        single("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
               static_cast<double>(stat->rss_pages) * static_cast<double>(sysconf(_SC_PAGESIZE))));
    families.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              MetricType::Gauge, static_cast<double>(stat->vsize_bytes)));
    if (const auto boot = read_boot_time_seconds()) {
      families.push_back(
          single("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                 *boot + static_cast<double>(stat->starttime_ticks) / ticks_per_second));
    }
  }
  if (const auto open_fds = count_open_fds()) {
    families.push_back(single("process_open_fds", "Number of open file descriptors.",
                              MetricType::Gauge, *open_fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    // RLIM_INFINITY is reported as the huge number it is, like the Go client does.
    families.push_back(single("process_max_fds", "Maximum number of open file descriptors.",
                              MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

std::vector<MetricFamily> collect_log_metrics() {
  const LogCounters counters = log_counters();
  return {single("sluice_log_lines_dropped_total",
                 "Log lines lost because the queue to the log writer was full (the oldest line goes).",
                 MetricType::Counter, static_cast<double>(counters.dropped)),
          single("sluice_log_lines_suppressed_total",
                 "Repeated warnings not written: at most one line per key (event and backend or listener) per second.",
                 MetricType::Counter, static_cast<double>(counters.suppressed))};
}

}  // namespace sluice
