#pragma once
// Repeated log lines, limited: at most one line per key per window (a second), the rest
// suppressed and counted; once the window is over, how many were suppressed is reported once.
// Pure logic with the time passed in; not thread-safe (logging.cpp holds it under a mutex).

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice {

class RateLimiter {
 public:
  explicit RateLimiter(std::uint64_t window_ms = 1000) : window_ms_(window_ms) {}

  struct Verdict {
    bool log = false;                    // write this line
    std::uint64_t suppressed_before = 0;  // lines of this key suppressed since its last written one, to report first
  };
  /// A line of `key` at `now_ms`: the first of a window is written, the others are suppressed.
  Verdict admit(std::string_view key, std::uint64_t now_ms);

  struct Suppressed {
    std::string key;
    std::uint64_t lines = 0;
  };
  /// Keys whose window ended by `now_ms` (every key when `all`) with lines suppressed in it, each
  /// reported once; keys with nothing left to report are forgotten.
  std::vector<Suppressed> take_expired(std::uint64_t now_ms, bool all = false);

  /// Lines suppressed since construction.
  std::uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  struct Window {
    std::uint64_t started_ms = 0;
    std::uint64_t suppressed = 0;
  };
  std::uint64_t window_ms_;
  std::unordered_map<std::string, Window> windows_;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace sluice
