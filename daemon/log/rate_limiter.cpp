#include "sluice/log/rate_limiter.hpp"

namespace sluice {

RateLimiter::Verdict RateLimiter::admit(std::string_view key, std::uint64_t now_ms) {
  auto it = windows_.find(std::string(key));
  if (it == windows_.end()) {
    windows_.emplace(std::string(key), Window{now_ms, 0});
    return {true, 0};
  }
  Window& window = it->second;
  if (now_ms - window.started_ms >= window_ms_) {
    const Verdict verdict{true, window.suppressed};
    window = Window{now_ms, 0};
    return verdict;
  }
  ++window.suppressed;
  ++suppressed_total_;
  return {false, 0};
}

std::vector<RateLimiter::Suppressed> RateLimiter::take_expired(std::uint64_t now_ms, bool all) {
  std::vector<Suppressed> expired;
  for (auto it = windows_.begin(); it != windows_.end();) {
    const Window& window = it->second;
    if (!all && now_ms - window.started_ms < window_ms_) {
      ++it;
      continue;
    }
    if (window.suppressed != 0) expired.push_back({it->first, window.suppressed});
    it = windows_.erase(it);  // its next line starts a new window and is written
  }
  return expired;
}

}  // namespace sluice
