// The scaling signal's arithmetic (README "The scaling signal"): synthetic cumulative sums in,
// window estimates out; the window slides, warms up, and without slots there is no model.

#include <doctest/doctest.h>

#include <cmath>

#include "sluice/control/scaling_signal.hpp"
#include "sluice/scaling/assessment.hpp"
#include "sluice/scaling/estimator.hpp"

using sluice::LoadSums;
using sluice::Millis;
using sluice::scaling::Estimator;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;

// Cumulative sums after `seconds` of a steady stream: `rate` arrivals a second, each gap either
// g-d or g+d (mean g = 1/rate, so CV d/g), and as many completions of slot time s-e or s+e.
LoadSums steady(double seconds, double rate, double gap_spread, double slot, double slot_spread) {
  LoadSums sums;
  const auto n = static_cast<std::uint64_t>(std::llround(seconds * rate));
  const double gap = 1 / rate;
  for (std::uint64_t i = 0; i < n; ++i) {
    const double sign = i % 2 == 0 ? -1 : 1;
    const double g = gap + sign * gap_spread;
    ++sums.arrivals;
    ++sums.gaps;
    sums.gap_seconds += g;
    sums.gap_squares += g * g;
    sums.complete(slot + sign * slot_spread);
  }
  return sums;
}

}  // namespace

TEST_CASE("scaling estimator: the coefficient of variation of sums") {
  using sluice::scaling::coefficient_of_variation;
  CHECK(coefficient_of_variation(2, 2.0, 1.0 + 1.0) == 0);         // 1, 1
  CHECK(coefficient_of_variation(2, 2.0, 0.25 + 2.25) == doctest::Approx(0.5));  // 0.5, 1.5
  CHECK(coefficient_of_variation(1, 3.0, 9.0) == 0);               // one value: none
  CHECK(coefficient_of_variation(4, 4.0, 4.0 - 1e-12) == 0);       // rounding below 0: 0
}

TEST_CASE("scaling estimator: LoadSums counts arrivals, gaps and slot times") {
  LoadSums sums;
  sums.arrive(1 * kSecond);
  sums.arrive(3 * kSecond);
  sums.arrive(4 * kSecond);
  CHECK(sums.arrivals == 3);
  CHECK(sums.gaps == 2);  // the first arrival has no gap
  CHECK(sums.gap_seconds == doctest::Approx(3));
  CHECK(sums.gap_squares == doctest::Approx(5));
  sums.complete(0.5);
  sums.complete(1.5);
  CHECK(sums.completions == 2);
  CHECK(sums.slot_squares == doctest::Approx(2.5));
}

TEST_CASE("scaling estimator: rate, mean slot time and CVs over the window") {
  Estimator estimator(Millis(20000));
  CHECK_FALSE(estimator.estimate());
  estimator.add(100 * kSecond, LoadSums{});
  CHECK_FALSE(estimator.estimate());  // one copy: no span
  estimator.add(120 * kSecond, steady(20, 60, 0.005, 0.02, 0.01));
  const auto e = estimator.estimate();
  REQUIRE(e);
  CHECK(e->span_seconds == doctest::Approx(20));
  CHECK(e->arrivals == 1200);
  CHECK(e->completions == 1200);
  CHECK(e->arrival_rate == doctest::Approx(60));
  CHECK(e->mean_service_seconds == doctest::Approx(0.02));
  CHECK(e->arrival_cv == doctest::Approx(0.005 * 60));
  CHECK(e->service_cv == doctest::Approx(0.5));
  CHECK(e->warm);
}

TEST_CASE("scaling estimator: the window slides, keeping a base one window old") {
  Estimator estimator(Millis(10000));
  // 10 arrivals a second for 30 s, then 20 a second: once a full window of the second rate has
  // passed, only it is seen.
  LoadSums sums;
  for (int t = 0; t <= 60; ++t) {
    estimator.add(static_cast<std::uint64_t>(t) * kSecond, sums);
    const int rate = t < 30 ? 10 : 20;
    for (int i = 0; i < rate; ++i) {
      sums.arrive(static_cast<std::uint64_t>(t) * kSecond + static_cast<std::uint64_t>(i) * (kSecond / rate));
      sums.complete(0.01);
    }
    if (t == 25) CHECK(estimator.estimate()->arrival_rate == doctest::Approx(10));
    if (t == 35) CHECK(estimator.estimate()->arrival_rate == doctest::Approx(15));  // half and half
  }
  const auto e = estimator.estimate();
  REQUIRE(e);
  CHECK(e->span_seconds == doctest::Approx(10));
  CHECK(e->arrival_rate == doctest::Approx(20));
  CHECK(e->arrival_cv < 1e-3);  // evenly spaced
}

TEST_CASE("scaling estimator: warming up until 10 s and 20 completions") {
  Estimator estimator(Millis(60000));
  estimator.add(0, LoadSums{});
  estimator.add(9 * kSecond, steady(9, 10, 0, 0.01, 0));
  CHECK_FALSE(estimator.estimate()->warm);  // 90 completions but 9 s
  Estimator sparse(Millis(60000));
  sparse.add(0, LoadSums{});
  sparse.add(30 * kSecond, steady(30, 0.5, 0, 0.01, 0));
  CHECK(sparse.estimate()->completions == 15);
  CHECK_FALSE(sparse.estimate()->warm);  // 30 s but 15 completions
  sparse.add(50 * kSecond, steady(50, 0.5, 0, 0.01, 0));
  CHECK(sparse.estimate()->warm);
}

TEST_CASE("scaling estimator: sums that go backwards restart the window") {
  Estimator estimator(Millis(60000));
  estimator.add(0, LoadSums{});
  estimator.add(20 * kSecond, steady(20, 10, 0, 0.01, 0));
  estimator.add(21 * kSecond, LoadSums{});  // the service was removed and added again
  CHECK_FALSE(estimator.estimate());
  estimator.add(31 * kSecond, steady(10, 10, 0, 0.01, 0));
  CHECK(estimator.estimate()->span_seconds == doctest::Approx(10));
  CHECK(estimator.estimate()->arrivals == 100);
}

TEST_CASE("scaling assessment: warming up, no model without slots, and a model per worker") {
  sluice::ScalingConfig config;
  config.target_wait = Millis(5);
  config.slots_per_backend = 1;
  config.max_backends = 10;
  Estimator estimator(config.window);
  estimator.add(0, LoadSums{});
  estimator.add(5 * kSecond, steady(5, 60, 0.004, 0.02, 0.005));
  const sluice::scaling::Capacity three{3, 3, 0};

  auto warming = sluice::scaling::assess("web", config, estimator.estimate(), 1, three);
  CHECK(warming.state == sluice::scaling::State::warming_up);
  CHECK(warming.reason.find("a model needs 10 s and 20") != std::string::npos);
  CHECK_FALSE(warming.recommendation);

  estimator.add(60 * kSecond, steady(60, 60, 0.004, 0.02, 0.005));
  const auto unlimited = sluice::scaling::assess("web", config, estimator.estimate(), 1, {3, 2, 1});
  CHECK(unlimited.state == sluice::scaling::State::no_model);
  CHECK(unlimited.reason.find("max_connections 0") != std::string::npos);
  CHECK(unlimited.offered_load == doctest::Approx(1.2));  // the estimates are still there

  const auto two_workers = sluice::scaling::assess("web", config, estimator.estimate(), 2, three);
  CHECK(two_workers.worker_arrival_rate == doctest::Approx(30));
  CHECK(two_workers.offered_load == doctest::Approx(0.6));
}

TEST_CASE("scaling signal: a reload keeps the window unless it changes window, and drops removed services") {
  sluice::Config config;
  sluice::ServiceConfig web;
  web.name = "web";
  web.scaling = sluice::ScalingConfig{};
  web.scaling->target_wait = Millis(5);
  web.scaling->slots_per_backend = 1;
  sluice::ServiceConfig plain;
  plain.name = "plain";  // no scaling: no signal
  config.services = {web, plain};
  sluice::ScalingSignal signal;
  signal.configure(config);
  signal.add(0, {{"web", LoadSums{}}, {"plain", LoadSums{}}});
  signal.add(30 * kSecond, {{"web", steady(30, 10, 0, 0.01, 0)}});
  auto capacity = [](const std::string&) { return sluice::scaling::Capacity{2, 2, 0}; };
  auto first = signal.assess(1, capacity);
  REQUIRE(first.size() == 1);
  CHECK(first[0].service == "web");
  CHECK(first[0].state == sluice::scaling::State::ok);

  config.services[0].scaling->target_wait = Millis(1);  // a new target: the data stays
  signal.configure(config);
  auto retargeted = signal.assess(1, capacity);
  CHECK(retargeted[0].state == sluice::scaling::State::ok);
  CHECK(retargeted[0].config.target_wait == Millis(1));

  config.services[0].scaling->window = Millis(30000);  // a new window: it starts again
  signal.configure(config);
  CHECK(signal.assess(1, capacity)[0].state == sluice::scaling::State::warming_up);

  config.services[0].scaling.reset();
  signal.configure(config);
  CHECK(signal.empty());
}
