#include "sluice/scaling/allen_cunneen.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace sluice::scaling {

namespace {

void check_cv(double cv, const char* name) {
  if (!std::isfinite(cv) || cv < 0) {
    throw std::invalid_argument(std::string(name) + " (coefficient of variation) must be a finite number >= 0 (got " +
                                std::to_string(cv) + ")");
  }
}

void check(const Variability& v) {
  check_cv(v.arrival_cv, "arrival_cv");
  check_cv(v.service_cv, "service_cv");
}

}  // namespace

bool correction_applies(const Variability& v) {
  check(v);
  return std::abs(v.arrival_cv - 1) > kCvTolerance || std::abs(v.service_cv - 1) > kCvTolerance;
}

double correction_factor(const Variability& v) {
  check(v);
  return (v.arrival_cv * v.arrival_cv + v.service_cv * v.service_cv) / 2;
}

double applied_factor(const Variability& v) {
  return correction_applies(v) ? correction_factor(v) : 1.0;
}

double corrected_quantile(double mmc_quantile, double factor) {
  // P(W > t) ~ C exp(-(c mu - lambda) t / factor): solving C exp(-r t / f) = 1 - p gives f times the
  // M/M/c answer (and 0 stays 0, when C <= 1 - p).
  return mmc_quantile * factor;
}

}  // namespace sluice::scaling
