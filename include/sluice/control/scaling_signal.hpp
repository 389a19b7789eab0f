#pragma once
// The scaling signal of every service with a `scaling` section, on the control plane: one
// Estimator per such service, fed once a second with the cumulative LoadSums summed over the
// workers, and the assessment of each from its window, the slots up now and the number of workers.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/scaling/assessment.hpp"
#include "sluice/scaling/estimator.hpp"

namespace sluice {

class ScalingSignal {
 public:
  /// The services of `config` with `scaling`: a service whose window is unchanged keeps its
  /// estimator (a reload of its target keeps the data), the others start afresh.
  void configure(const Config& config);
  bool empty() const { return entries_.empty(); }

  /// The cumulative sums of each service (over every worker) at `now_ns`; services not named are
  /// left as they are.
  void add(std::uint64_t now_ns, const std::map<std::string, LoadSums>& totals);

  /// Each configured service's assessment, in name order. `capacity` gives the slots up now.
  std::vector<scaling::Assessment> assess(std::uint32_t workers,
                                          const std::function<scaling::Capacity(const std::string&)>& capacity) const;

 private:
  struct Entry {
    ScalingConfig config;
    scaling::Estimator estimator;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace sluice
