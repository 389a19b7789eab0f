// The scaling library: Erlang B and C against published tables and exact closed forms, its stability
// at thousands of slots, Allen-Cunneen's rule, and recommend's search, clamps and refusals.
// (Its agreement with scripts/experiment/queueing.py: tests/scaling/queueing_crosscheck.py.)

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "sluice/scaling/allen_cunneen.hpp"
#include "sluice/scaling/erlang_c.hpp"
#include "sluice/scaling/recommend.hpp"

using namespace sluice::scaling;

namespace {

// The 20 ms example of the issue: lambda 60/s, mu 50/s (a = 1.2 erlangs), one slot per backend.
RecommendInput example(double target_wait) {
  RecommendInput in;
  in.lambda = 60;
  in.mu = 50;
  in.current_slots = 3;
  in.target.mean_wait_seconds = target_wait;
  in.slots_per_backend = 1;
  in.min_backends = 1;
  in.max_backends = 100;
  return in;
}

std::string thrown_by(const RecommendInput& in) {
  try {
    recommend(in);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

}  // namespace

TEST_CASE("erlang: B and C equal the published tables to 4 decimals") {
  // The classic Erlang B table (blocking probability for N trunks offered A erlangs), as printed in
  // any teletraffic handbook: B(5, 2) = 0.0367, B(10, 5) = 0.0184.
  CHECK(std::abs(erlang_b(5, 2) - 0.0367) < 5e-5);
  CHECK(std::abs(erlang_b(10, 5) - 0.0184) < 5e-5);
  // C from the tabled B by C = c B / (c - a (1 - B)), the relation between Erlang's B and C
  // formulas (Kleinrock, Queueing Systems Vol. 1, 1975, the M/M/m system):
  // C(5, 2) = 5 x 0.0367 / (5 - 2 x 0.9633) = 0.0597, C(10, 5) = 0.184 / (10 - 5 x 0.9816) = 0.0361.
  CHECK(std::abs(*erlang_c(5, 2) - 0.0597) < 5e-5);
  CHECK(std::abs(*erlang_c(10, 5) - 0.0361) < 5e-5);
  // The textbook M/M/3 value the experiment's self-check uses: C(3, 2.4) = 0.6472.
  CHECK(std::abs(*erlang_c(3, 2.4) - 0.6472) < 5e-5);
}

TEST_CASE("erlang: C equals its closed form exactly for small cases") {
  // C(c, a) = (a^c / c!) (c / (c - a)) / (sum_{k<c} a^k / k! + (a^c / c!) (c / (c - a))), by hand:
  // C(1, a) = a; C(3, 2) = 4 / (5 + 4) = 4/9; C(2, 1.2) = 1.8 / (2.2 + 1.8) = 9/20;
  // C(3, 1.2) = 12/85; C(4, 1.2) = 108/2915; and B(1, a) = a / (1 + a).
  CHECK(*erlang_c(1, 0.5) == doctest::Approx(0.5).epsilon(1e-14));
  CHECK(*erlang_c(3, 2) == doctest::Approx(4.0 / 9).epsilon(1e-14));
  CHECK(*erlang_c(2, 1.2) == doctest::Approx(9.0 / 20).epsilon(1e-14));
  CHECK(*erlang_c(3, 1.2) == doctest::Approx(12.0 / 85).epsilon(1e-14));
  CHECK(*erlang_c(4, 1.2) == doctest::Approx(108.0 / 2915).epsilon(1e-14));
  CHECK(erlang_b(1, 3) == doctest::Approx(0.75).epsilon(1e-14));
  CHECK(erlang_b(0, 3) == 1);
  CHECK(*erlang_c(4, 0) == 0);
}

TEST_CASE("erlang: no steady state at a >= c gives nullopt, never a NaN") {
  CHECK_FALSE(erlang_c(3, 3).has_value());
  CHECK_FALSE(erlang_c(3, 4.5).has_value());
  CHECK_FALSE(erlang_c(0, 0).has_value());
  const Queue full{.lambda = 150, .mu = 50, .slots = 3};
  CHECK_FALSE(mean_wait(full).has_value());
  CHECK_FALSE(wait_exceeds(full, 0.01).has_value());
  CHECK_FALSE(wait_quantile(full, 0.95).has_value());
  CHECK_FALSE(mean_response(full).has_value());
  CHECK_FALSE(mean_wait(Queue{.lambda = 1, .mu = 1, .slots = 0}).has_value());
}

TEST_CASE("erlang: c = 1000 at rho 0.95 and c = 10000 stay finite and C falls as c grows") {
  const double a = 950;
  double previous = 1;
  for (std::uint32_t c = 951; c <= 1100; ++c) {
    const auto value = erlang_c(c, a);
    REQUIRE(value.has_value());
    REQUIRE(std::isfinite(*value));
    REQUIRE(*value > 0);
    REQUIRE(*value < previous);
    previous = *value;
  }
  const auto at_1000 = erlang_c(1000, a);
  CHECK(*at_1000 == doctest::Approx(0.068253415377).epsilon(1e-9));  // scripts/experiment/queueing.py
  const auto at_10000 = erlang_c(10000, 9990);
  REQUIRE(at_10000.has_value());
  CHECK(std::isfinite(*at_10000));
  CHECK(*at_10000 == doctest::Approx(0.88054171137).epsilon(1e-9));  // queueing.py too
  const Queue q{.lambda = 9500, .mu = 1, .slots = 10000};
  CHECK(std::isfinite(*mean_wait(q)));
  CHECK(*mean_wait(q) > 0);
}

TEST_CASE("erlang: the wait's mean, tail and quantile agree with each other") {
  const Queue q{.lambda = 60, .mu = 50, .slots = 3};
  const double c = 12.0 / 85;  // C(3, 1.2), by hand above
  CHECK(*mean_wait(q) == doctest::Approx(c / 90).epsilon(1e-12));
  CHECK(*mean_response(q) == doctest::Approx(c / 90 + 0.02).epsilon(1e-12));
  CHECK(*wait_exceeds(q, 0) == doctest::Approx(c).epsilon(1e-12));
  CHECK(*wait_exceeds(q, -1) == 1);
  CHECK(*wait_exceeds(q, 0.01) == doctest::Approx(c * std::exp(-0.9)).epsilon(1e-12));
  // The 0.95 quantile t solves C exp(-90 t) = 0.05, and the tail there is exactly 1 - p.
  const double t95 = *wait_quantile(q, 0.95);
  CHECK(t95 == doctest::Approx(std::log(c / 0.05) / 90).epsilon(1e-12));
  CHECK(*wait_exceeds(q, t95) == doctest::Approx(0.05).epsilon(1e-12));
  // C = 0.141 <= 1 - 0.8: four arrivals in five never wait, so the 0.8 quantile is 0.
  CHECK(*wait_quantile(q, 0.8) == 0);
  CHECK_THROWS_AS(wait_quantile(q, 1), std::invalid_argument);
  CHECK_THROWS_AS(mean_wait(Queue{.lambda = 1, .mu = 0, .slots = 3}), std::invalid_argument);
  CHECK_THROWS_AS(erlang_b(3, -1), std::invalid_argument);
}

TEST_CASE("allen-cunneen: applies only when a CV is more than 0.2 away from 1") {
  CHECK_FALSE(correction_applies({.arrival_cv = 1, .service_cv = 1}));
  CHECK_FALSE(correction_applies({.arrival_cv = 1.15, .service_cv = 0.85}));
  CHECK(correction_applies({.arrival_cv = 1, .service_cv = 0.7}));
  CHECK(correction_applies({.arrival_cv = 1.3, .service_cv = 1}));
  CHECK(correction_applies({.arrival_cv = 1, .service_cv = 0}));  // M/D/c
  CHECK(correction_factor({.arrival_cv = 1, .service_cv = 0}) == 0.5);
  CHECK(correction_factor({.arrival_cv = 2, .service_cv = 2}) == 4);
  CHECK(applied_factor({.arrival_cv = 1.1, .service_cv = 0.9}) == 1);  // the plain model
  CHECK(applied_factor({.arrival_cv = 2, .service_cv = 1}) == 2.5);
  CHECK(corrected_quantile(0.01, 2.5) == doctest::Approx(0.025));
  CHECK_THROWS_AS(correction_applies({.arrival_cv = -0.1, .service_cv = 1}), std::invalid_argument);
}

TEST_CASE("recommend: lambda 60/s, mu 50/s, target Wq 5 ms needs 3 slots, as computed by hand") {
  // a = 1.2. c = 2: B = 0.2466, C = 2B / (2 - 1.2 (1 - B)) = 0.45, Wq = 0.45 / (100 - 60) = 11.25 ms > 5 ms.
  //          c = 3: B = 0.0898, C = 0.1412, Wq = 0.1412 / (150 - 60) = 1.57 ms <= 5 ms. So c* = 3.
  const Recommendation r = recommend(example(0.005));
  CHECK(r.offered_load == doctest::Approx(1.2));
  CHECK_FALSE(r.corrected);
  CHECK(r.factor == 1);
  CHECK(r.slots == 3);
  CHECK(r.backends == 3);
  CHECK(r.clamp == Clamp::none);
  CHECK(r.utilisation == doctest::Approx(0.4));
  CHECK(r.erlang_c == doctest::Approx(12.0 / 85));
  CHECK(r.wait == doctest::Approx(12.0 / 85 / 90));
  REQUIRE(r.utilisation_now.has_value());
  CHECK(*r.utilisation_now == doctest::Approx(0.4));
  CHECK(*r.wait_now == doctest::Approx(r.wait));
  CHECK_FALSE(r.quantile_wait_now.has_value());
  // 11.25 ms is met by c = 2 exactly at the boundary.
  CHECK(recommend(example(0.01125 + 1e-12)).slots == 2);
}

TEST_CASE("recommend: c* never rises as the target loosens and rho < 1 always") {
  std::uint32_t previous = UINT32_MAX;
  for (double target = 1e-6; target < 1; target *= 1.5) {
    const Recommendation r = recommend(example(target));
    CHECK(r.slots <= previous);
    CHECK(r.utilisation < 1);
    CHECK(r.wait <= target);
    // c* is the smallest: one slot fewer either has no steady state or misses the target.
    if (r.slots > 2) {
      const auto fewer = mean_wait(Queue{.lambda = 60, .mu = 50, .slots = r.slots - 1});
      CHECK(*fewer > target);
    }
    previous = r.slots;
  }
  CHECK(previous == 2);  // floor(a) + 1: the least c with rho < 1
}

TEST_CASE("recommend: a quantile target can ask for more slots than the mean") {
  RecommendInput in = example(0.005);
  in.target.quantile = QuantileTarget{.p = 0.99, .wait_seconds = 0.005};
  const Recommendation r = recommend(in);
  // At c = 3: C = 0.1412, p99 = ln(0.1412 / 0.01) / 90 = 29.4 ms > 5 ms; c = 4: C = 0.0370,
  // ln(3.70) / 140 = 9.3 ms; c = 5: C = 0.0082 <= 0.01, so the p99 wait is 0.
  CHECK(r.slots == 5);
  CHECK(*r.quantile_wait == 0);
  CHECK(*r.quantile_wait_now == doctest::Approx(std::log(12.0 / 85 / 0.01) / 90));
}

TEST_CASE("recommend: backends are rounded up and clamped both ways with the clamp flagged") {
  RecommendInput in = example(0.005);  // c* = 3
  in.slots_per_backend = 2;
  CHECK(recommend(in).backends == 2);
  CHECK(recommend(in).clamp == Clamp::none);
  in.min_backends = 4;
  CHECK(recommend(in).backends == 4);
  CHECK(recommend(in).clamp == Clamp::min_backends);
  in.min_backends = 1;
  in.max_backends = 1;
  CHECK(recommend(in).backends == 1);
  CHECK(recommend(in).clamp == Clamp::max_backends);
  CHECK(recommend(in).slots == 3);  // the clamp leaves c* as computed
  // No arrivals: no slot is needed, and min_backends is what is left.
  in = example(0.005);
  in.lambda = 0;
  in.min_backends = 2;
  const Recommendation idle = recommend(in);
  CHECK(idle.slots == 0);
  CHECK(idle.backends == 2);
  CHECK(idle.clamp == Clamp::min_backends);
  CHECK(*idle.wait_now == 0);
}

TEST_CASE("recommend: ca = cs = 2 raises c* and M/D/c lowers or keeps it") {
  RecommendInput in = example(0.005);
  in.variability = {.arrival_cv = 2, .service_cv = 2};
  // Factor 4: c = 3 gives 4 x 1.57 = 6.27 ms > 5 ms; c = 4: 4 x 0.0370 / 140 = 1.06 ms.
  const Recommendation bursty = recommend(in);
  CHECK(bursty.corrected);
  CHECK(bursty.factor == 4);
  CHECK(bursty.slots == 4);
  CHECK(*bursty.wait_now == doctest::Approx(4 * 12.0 / 85 / 90));
  // M/D/c (cs = 0), factor 0.5: at 5 ms c = 2 gives 5.6 ms, so c* stays 3; at 6 ms it falls to 2
  // where the plain model needs 3.
  in.variability = {.arrival_cv = 1, .service_cv = 0};
  CHECK(recommend(in).slots == 3);
  RecommendInput six = example(0.006);
  CHECK(recommend(six).slots == 3);
  six.variability = {.arrival_cv = 1, .service_cv = 0};
  CHECK(recommend(six).slots == 2);
  CHECK(recommend(six).corrected);
}

TEST_CASE("recommend: at a thousand slots the search stays exact") {
  RecommendInput in = example(0.001);
  in.lambda = 47'500;  // a = 950
  in.current_slots = 960;
  in.max_backends = 2000;
  const Recommendation r = recommend(in);
  REQUIRE(r.slots > 950);
  CHECK(r.wait <= 0.001);
  CHECK(*mean_wait(Queue{.lambda = 47'500, .mu = 50, .slots = r.slots}) == doctest::Approx(r.wait).epsilon(1e-12));
  CHECK(*mean_wait(Queue{.lambda = 47'500, .mu = 50, .slots = r.slots - 1}) > 0.001);
}

TEST_CASE("recommend: every bad input is refused naming it") {
  RecommendInput in = example(0.005);
  in.lambda = -1;
  CHECK(thrown_by(in).find("lambda") == 0);
  in = example(0.005);
  in.mu = 0;
  CHECK(thrown_by(in).find("mu") == 0);
  CHECK(thrown_by(example(0)).find("target mean wait") == 0);
  in = example(0.005);
  in.target.quantile = QuantileTarget{.p = 1, .wait_seconds = 0.01};
  CHECK(thrown_by(in).find("target quantile p") == 0);
  in.target.quantile = QuantileTarget{.p = 0.95, .wait_seconds = 0};
  CHECK(thrown_by(in).find("target quantile wait") == 0);
  in = example(0.005);
  in.slots_per_backend = 0;
  CHECK(thrown_by(in).find("slots_per_backend") == 0);
  in = example(0.005);
  in.min_backends = 5;
  in.max_backends = 4;
  CHECK(thrown_by(in).find("min_backends (5) must not exceed max_backends (4)") == 0);
  in = example(0.005);
  in.variability.service_cv = -1;
  CHECK(thrown_by(in).find("service_cv") == 0);
}
