// Seeded random draws for the experiment tools. The generator (xoshiro256**, seeded through
// splitmix64) and the inverse-transform exponential are written out here rather than taken from
// <random>, whose distributions differ between standard libraries: a seed recorded with a run must
// reproduce the same draws wherever the tools are rebuilt.

#pragma once

#include <cmath>
#include <cstdint>

namespace sluice::tools {

class Random {
 public:
  explicit Random(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& word : state_) word = splitmix64(x);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in (0, 1]: never 0, so log() below is finite.
  double uniform_open0() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }

  // Exponential with the given mean (any unit), by inversion.
  double exponential(double mean) { return -mean * std::log(uniform_open0()); }

  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-32 for small n).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t state_[4];
};

}  // namespace sluice::tools
