#pragma once
// What every test binary shares: reporting a test that cannot run, and the one time scale for
// wall-clock upper bounds.
//
// A skip is visible: SLUICE_SKIP prints SLUICE_SKIP_MARKER, which ctest's SKIP_REGULAR_EXPRESSION
// (tests/CMakeLists.txt) turns into "Skipped" instead of "Passed". Under CI=true, or with
// SLUICE_REQUIRE_ALL=1, a skip is a failure instead: CI must prove every row.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace sluice::test {

/// The text ctest looks for in a test's output to report it skipped.
inline constexpr const char* skip_marker = "[sluice-test-skipped]";

/// True when a test that cannot run must fail: CI=true or SLUICE_REQUIRE_ALL=1.
inline bool skips_are_failures() {
  const char* ci = std::getenv("CI");
  const char* require_all = std::getenv("SLUICE_REQUIRE_ALL");
  return (ci != nullptr && std::strcmp(ci, "true") == 0) ||
         (require_all != nullptr && std::strcmp(require_all, "1") == 0);
}

/// The factor every wall-clock upper bound is multiplied by: $SLUICE_TEST_TIME_SCALE (ctest sets it
/// to 3 for the ASan+UBSan and TSan runs), else 1. Bounds on the daemon's own evidence (its
/// counters, its logged timestamps) need no scale.
inline double time_scale() {
  static const double scale = [] {
    const char* text = std::getenv("SLUICE_TEST_TIME_SCALE");
    if (text == nullptr || *text == '\0') return 1.0;
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    return *end == '\0' && value >= 1.0 ? value : 1.0;
  }();
  return scale;
}

/// `bound` times the time scale.
template <typename Rep, typename Period>
auto scaled(std::chrono::duration<Rep, Period> bound) {
  return std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(bound * time_scale());
}

}  // namespace sluice::test

/// Ends the current test case as skipped, saying why; under CI=true or SLUICE_REQUIRE_ALL=1 fails
/// it instead. Use only in the body of a TEST_CASE (it returns from it).
#define SLUICE_SKIP(reason)                                                                       \
  do {                                                                                           \
    if (::sluice::test::skips_are_failures()) {                                                  \
      FAIL("this test cannot run here and CI=true or SLUICE_REQUIRE_ALL=1 requires it: " << reason); \
    }                                                                                            \
    std::cout << ::sluice::test::skip_marker << " " << reason << std::endl;                      \
    MESSAGE("skipped: " << reason);                                                              \
    return;                                                                                      \
  } while (false)
