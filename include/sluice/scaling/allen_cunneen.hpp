#pragma once
// The Allen-Cunneen approximation for G/G/c: Wq(G/G/c) ~ Wq(M/M/c) x (ca^2 + cs^2) / 2, where ca and
// cs are the coefficients of variation of the inter-arrival and service times.

namespace sluice::scaling {

struct Variability {
  double arrival_cv = 1;  // ca: stddev / mean of the inter-arrival times (1 for Poisson arrivals)
  double service_cv = 1;  // cs: stddev / mean of the service times (1 for exponential service)
};

/// How far from 1 a CV must be before the correction is applied. A CV estimated over a 60 s window
/// at tens of events per second has a few percent of noise; 0.2 keeps Poisson arrivals and
/// exponential service on the plain M/M/c model.
inline constexpr double kCvTolerance = 0.2;

/// True when either CV is more than kCvTolerance away from 1. Throws std::invalid_argument naming
/// a CV that is negative or not finite (so does every function here).
bool correction_applies(const Variability& v);

/// (ca^2 + cs^2) / 2: the factor the M/M/c mean wait is multiplied by.
double correction_factor(const Variability& v);

/// The factor to use: correction_factor(v) when correction_applies(v), else 1 (the plain M/M/c).
double applied_factor(const Variability& v);

/// The G/G/c quantile from an M/M/c quantile of the same queue. An approximation of ours, not part
/// of Allen-Cunneen (which gives only the mean): the tail keeps its M/M/c shape C exp(-r t) with its
/// rate r = c mu - lambda divided by the factor, so that its mean is the corrected mean; every
/// quantile is then the M/M/c quantile times the factor.
double corrected_quantile(double mmc_quantile, double factor);

}  // namespace sluice::scaling
