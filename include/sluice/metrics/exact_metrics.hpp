#pragma once
// Whether the exact time integrals and histograms are kept. Always, except in the benchmark build
// that measures their cost (CMake option SLUICE_EXACT_METRICS=OFF), where they read 0.

#ifndef SLUICE_EXACT_METRICS
#define SLUICE_EXACT_METRICS 1
#endif

namespace sluice {

inline constexpr bool kExactMetrics = SLUICE_EXACT_METRICS != 0;

}  // namespace sluice
