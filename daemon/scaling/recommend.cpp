#include "sluice/scaling/recommend.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "sluice/scaling/erlang_c.hpp"

namespace sluice::scaling {

namespace {

[[noreturn]] void bad(const std::string& what, double value) {
  throw std::invalid_argument(what + " (got " + std::to_string(value) + ")");
}

void validate(const RecommendInput& in) {
  if (!std::isfinite(in.lambda) || in.lambda < 0) bad("lambda (arrival rate) must be a finite number >= 0", in.lambda);
  if (!std::isfinite(in.mu) || in.mu <= 0) bad("mu (service rate per slot) must be a finite number > 0", in.mu);
  if (!(in.target.mean_wait_seconds > 0)) {
    bad("target mean wait (seconds) must be > 0", in.target.mean_wait_seconds);
  }
  if (in.target.quantile) {
    if (!(in.target.quantile->p > 0 && in.target.quantile->p < 1)) {
      bad("target quantile p must be in (0, 1)", in.target.quantile->p);
    }
    if (!(in.target.quantile->wait_seconds > 0)) {
      bad("target quantile wait (seconds) must be > 0", in.target.quantile->wait_seconds);
    }
  }
  if (in.slots_per_backend == 0) bad("slots_per_backend must be >= 1", 0);
  if (in.min_backends > in.max_backends) {
    throw std::invalid_argument("min_backends (" + std::to_string(in.min_backends) + ") must not exceed max_backends (" +
                                std::to_string(in.max_backends) + ")");
  }
  correction_applies(in.variability);  // throws naming a bad CV
}

// C at q.slots given B there, or nullopt when rho >= 1: a >= c, or c mu - lambda not > 0 after
// rounding (a just below c), which divides every figure.
std::optional<double> steady_erlang_c(const Queue& q, double a, double b) {
  if (!(q.slots * q.mu - q.lambda > 0)) return std::nullopt;
  return erlang_c_from_b(q.slots, a, b);
}

// The figures of one slot count with rho < 1, C known.
struct Figures {
  double wait = 0;
  std::optional<double> quantile_wait;
};

Figures figures(const RecommendInput& in, const Queue& q, double c, double factor) {
  Figures f{.wait = factor * mean_wait_given(q, c), .quantile_wait = std::nullopt};
  if (in.target.quantile) {
    f.quantile_wait = corrected_quantile(wait_quantile_given(q, c, in.target.quantile->p), factor);
  }
  return f;
}

bool meets(const Target& target, const Figures& f) {
  return f.wait <= target.mean_wait_seconds && (!target.quantile || *f.quantile_wait <= target.quantile->wait_seconds);
}

void describe_now(const RecommendInput& in, Recommendation& r) {
  if (in.current_slots == 0) return;
  r.utilisation_now = r.offered_load / in.current_slots;
  const Queue q{.lambda = in.lambda, .mu = in.mu, .slots = in.current_slots};
  const auto erlang = steady_erlang_c(q, r.offered_load, erlang_b(q.slots, r.offered_load));
  if (!erlang) return;  // rho >= 1: no steady state, no figures
  r.erlang_c_now = erlang;
  const Figures f = figures(in, q, *erlang, r.factor);
  r.wait_now = f.wait;
  r.quantile_wait_now = f.quantile_wait;
}

// The smallest c with rho < 1 meeting the target, walking up from floor(a) + 1 with B kept from one c
// to the next (each step O(1)). Wq and its quantiles fall to 0 as c grows, so the walk ends; the cap
// only turns a pathological input into an error.
void search(const RecommendInput& in, Recommendation& r) {
  const double a = r.offered_load;
  if (!(std::floor(a) + 1 <= kMaxSlots)) bad("offered load lambda / mu exceeds the slot search cap", a);
  std::uint32_t c = static_cast<std::uint32_t>(std::floor(a)) + 1;
  double b = erlang_b(c - 1, a);
  for (; c <= kMaxSlots; ++c) {
    b = erlang_b_step(c, a, b);
    const Queue q{.lambda = in.lambda, .mu = in.mu, .slots = c};
    const auto erlang = steady_erlang_c(q, a, b);
    if (!erlang) continue;
    const Figures f = figures(in, q, *erlang, r.factor);
    if (!meets(in.target, f)) continue;
    r.slots = c;
    r.utilisation = a / c;
    r.erlang_c = *erlang;
    r.wait = f.wait;
    r.quantile_wait = f.quantile_wait;
    return;
  }
  throw std::runtime_error("no slot count up to " + std::to_string(kMaxSlots) + " meets the target");
}

void size_backends(const RecommendInput& in, Recommendation& r) {
  const std::uint32_t needed = r.slots / in.slots_per_backend + (r.slots % in.slots_per_backend != 0 ? 1 : 0);
  r.backends = needed;
  if (needed < in.min_backends) {
    r.backends = in.min_backends;
    r.clamp = Clamp::min_backends;
  } else if (needed > in.max_backends) {
    r.backends = in.max_backends;
    r.clamp = Clamp::max_backends;
  }
}

}  // namespace

Recommendation recommend(const RecommendInput& in) {
  validate(in);
  Recommendation r;
  r.input = in;
  r.offered_load = in.lambda / in.mu;
  r.corrected = correction_applies(in.variability);
  r.factor = applied_factor(in.variability);
  describe_now(in, r);
  if (in.lambda > 0) {
    search(in, r);
  } else if (in.target.quantile) {
    r.quantile_wait = 0;  // no arrivals: nobody waits, and no slot is needed
  }
  size_backends(in, r);
  return r;
}

}  // namespace sluice::scaling
