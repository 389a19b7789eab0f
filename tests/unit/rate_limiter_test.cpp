#include <doctest/doctest.h>

#include "sluice/log/rate_limiter.hpp"

using sluice::RateLimiter;

TEST_CASE("rate limiter: one line per key per second, the rest suppressed and counted") {
  RateLimiter limiter(1000);
  CHECK(limiter.admit("connect_failed backend=a", 0).log);
  for (std::uint64_t t = 1; t <= 10; ++t) CHECK_FALSE(limiter.admit("connect_failed backend=a", t * 90).log);
  // Another key has a window of its own.
  CHECK(limiter.admit("connect_failed backend=b", 500).log);
  CHECK_FALSE(limiter.admit("connect_failed backend=b", 600).log);
  CHECK(limiter.suppressed_total() == 11);
  // A second on, a's next line is written and says how many went before it.
  const auto next = limiter.admit("connect_failed backend=a", 1000);
  CHECK(next.log);
  CHECK(next.suppressed_before == 10);
  CHECK_FALSE(limiter.admit("connect_failed backend=a", 1999).log);
  CHECK(limiter.suppressed_total() == 12);
}

TEST_CASE("rate limiter: an ended window's suppressed lines are reported once, and the key starts afresh") {
  RateLimiter limiter(1000);
  CHECK(limiter.admit("k", 100).log);
  CHECK_FALSE(limiter.admit("k", 200).log);
  CHECK_FALSE(limiter.admit("k", 300).log);
  CHECK(limiter.admit("quiet", 100).log);
  CHECK(limiter.take_expired(1099).empty());  // k's window is not over
  const auto expired = limiter.take_expired(1100);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].key == "k");
  CHECK(expired[0].lines == 2);
  CHECK(limiter.take_expired(5000).empty());  // reported once; "quiet" had nothing to report
  const auto fresh = limiter.admit("k", 1200);
  CHECK(fresh.log);
  CHECK(fresh.suppressed_before == 0);  // already reported
}

TEST_CASE("rate limiter: at exit every pending count is reported, whatever its window") {
  RateLimiter limiter(1000);
  CHECK(limiter.admit("k", 0).log);
  CHECK_FALSE(limiter.admit("k", 10).log);
  const auto all = limiter.take_expired(20, true);
  REQUIRE(all.size() == 1);
  CHECK(all[0].lines == 1);
}
