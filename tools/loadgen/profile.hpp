// Load profiles for sluice-loadgen: an arrival rate lambda(t) that changes over the run, and the
// non-homogeneous Poisson process of arrivals it defines.
//
// Spec forms (--profile TEXT, or --profile FILE holding the same text, one item a line, # comments):
//   steps:0s:20,120s:60,240s:30      lambda jumps to each rate at its time (the "steps:" prefix is optional)
//   linear:0s:10,60s:50,90s:50       straight lines between the points, the last rate after the last point
//   sine:mean=40,amplitude=25,period=300s[,phase=90]   mean + amplitude x sin(2 pi t / period + phase degrees)
// Times take a unit (as --duration); rates are per second; the first point is at 0s; lambda >= 0 throughout.
//
// The draw is exact: thinning (Lewis and Shedler) of a homogeneous process at the profile's maximum rate,
// each candidate kept with probability lambda(t) / max. No time is discretised.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../common/random.hpp"

namespace sluice::tools {

class RateProfile {
 public:
  enum class Kind { steps, linear, sine };

  // Parses a spec; nullopt with the reason in `error` on a bad one.
  static std::optional<RateProfile> parse(std::string_view spec, std::string& error);
  // A spec given as a file: comments (#) dropped, each line an item; nullopt with the reason if unreadable or bad.
  static std::optional<RateProfile> load(const std::string& path, std::string& error);

  double rate_at(double t_s) const;          // lambda(t), per second
  double max_rate() const;                   // the supremum over t >= 0
  double expected(double t0_s, double t1_s) const;  // the integral of lambda over [t0, t1]: the mean count
  const std::string& text() const { return text_; }  // the spec as given, for summaries

 private:
  Kind kind_ = Kind::steps;
  std::vector<std::pair<double, double>> points_;  // (seconds, rate), times increasing, the first at 0
  double mean_ = 0, amplitude_ = 0, period_s_ = 1, phase_rad_ = 0;
  std::string text_;
};

// Arrival offsets (nanoseconds from the start, increasing) of a Poisson process: homogeneous at `rate`
// without a profile (the same draws as before profiles existed, so old seeds repeat), else thinned.
class ArrivalProcess {
 public:
  // Past horizon_ns (the run's end; 0: none) no candidate is thinned any more, so a profile whose rate
  // falls to 0 for good still ends the run.
  ArrivalProcess(double rate, const std::optional<RateProfile>& profile, std::uint64_t seed, double horizon_ns = 0);
  double next_ns();

 private:
  double rate_;
  std::optional<RateProfile> profile_;
  Random random_;
  double horizon_ns_;
  double t_ns_ = 0;
};

}  // namespace sluice::tools
