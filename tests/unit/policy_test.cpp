// Balancing policies: exact sequences for small cases, and properties over many random weight vectors.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sluice/balancing/least_connections.hpp"
#include "sluice/balancing/policy.hpp"
#include "sluice/balancing/round_robin.hpp"

using sluice::BackendLoad;
using sluice::LeastConnections;
using sluice::PolicyKind;
using sluice::RoundRobin;

namespace {

std::vector<BackendLoad> with_weights(const std::vector<std::uint32_t>& weights) {
  std::vector<BackendLoad> backends;
  for (std::uint32_t w : weights) backends.push_back(BackendLoad{.weight = w});
  return backends;
}

// `count` picks as letters: a for index 0, b for 1, ...; '-' for nullopt.
std::string picks_as_letters(sluice::Policy& policy, const std::vector<BackendLoad>& backends, int count) {
  std::string letters;
  for (int n = 0; n < count; ++n) {
    const std::optional<std::size_t> chosen = policy.pick(backends);
    letters += chosen ? static_cast<char>('a' + *chosen) : '-';
  }
  return letters;
}

std::string joined(const std::vector<std::uint32_t>& values) {
  std::string text;
  for (auto v : values) {
    if (!text.empty()) text += ',';  // not "," + to_string(v): GCC 12 -O3 warns -Wrestrict falsely
    text += std::to_string(v);
  }
  return text;
}

// a/wa < b/wb, exactly.
bool ratio_less(std::uint64_t a, std::uint64_t wa, std::uint64_t b, std::uint64_t wb) { return a * wb < b * wa; }

}  // namespace

TEST_CASE("make_policy builds the policy its kind names") {
  CHECK(dynamic_cast<RoundRobin*>(sluice::make_policy(PolicyKind::round_robin, 3).get()) != nullptr);
  CHECK(dynamic_cast<LeastConnections*>(sluice::make_policy(PolicyKind::least_connections, 3).get()) != nullptr);
  CHECK(sluice::to_string(PolicyKind::round_robin) == "round_robin");
  CHECK(sluice::to_string(PolicyKind::least_connections) == "least_connections");
}

TEST_CASE("round_robin: weights 5,1,1 are spread as a a b a c a a") {
  RoundRobin rr(3);
  const auto backends = with_weights({5, 1, 1});
  CHECK(picks_as_letters(rr, backends, 14) == "aabacaaaabacaa");
}

TEST_CASE("round_robin: equal weights take turns") {
  RoundRobin rr(4);
  CHECK(picks_as_letters(rr, with_weights({1, 1, 1, 1}), 9) == "abcdabcda");
  RoundRobin rr3(3);
  CHECK(picks_as_letters(rr3, with_weights({7, 7, 7}), 6) == "abcabc");
}

TEST_CASE("round_robin: a single backend is always chosen") {
  RoundRobin rr(1);
  CHECK(picks_as_letters(rr, with_weights({3}), 4) == "aaaa");
}

TEST_CASE("round_robin: ineligible backends are skipped and keep their credit") {
  RoundRobin rr(3);
  auto backends = with_weights({1, 1, 1});
  CHECK(picks_as_letters(rr, backends, 1) == "a");
  backends[1].eligible = false;
  CHECK(picks_as_letters(rr, backends, 4) == "ccac");
  backends[1].eligible = true;
  // b kept the credit it earned in the first round while a and c went on without it: it goes first now.
  CHECK(picks_as_letters(rr, backends, 3) == "bac");

  RoundRobin weighted(3);
  auto heavy_down = with_weights({5, 1, 1});
  heavy_down[0].eligible = false;
  CHECK(picks_as_letters(weighted, heavy_down, 4) == "bcbc");
}

TEST_CASE("round_robin: nothing eligible or nothing at all gives nullopt and changes nothing") {
  RoundRobin rr(3);
  auto backends = with_weights({5, 1, 1});
  for (auto& b : backends) b.eligible = false;
  CHECK_FALSE(rr.pick(backends).has_value());
  CHECK_FALSE(rr.pick(backends).has_value());
  for (auto& b : backends) b.eligible = true;
  CHECK(picks_as_letters(rr, backends, 7) == "aabacaa");

  RoundRobin empty(0);
  CHECK_FALSE(empty.pick({}).has_value());
}

TEST_CASE("round_robin property: each cycle matches the weights exactly, and every prefix is smooth") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<std::uint32_t> weight_of(1, 20);
  std::uniform_int_distribution<std::size_t> size_of(2, 8);

  for (int trial = 0; trial < 500; ++trial) {
    const std::size_t n = size_of(rng);
    std::vector<std::uint32_t> weights(n);
    for (auto& w : weights) w = weight_of(rng);
    std::uint64_t total = 0;
    for (auto w : weights) total += w;
    CAPTURE(trial);
    const std::string weights_text = joined(weights);
    CAPTURE(weights_text);

    RoundRobin rr(n);
    const auto backends = with_weights(weights);
    // Two cycles: the state returns to all zeros after each, so the second must repeat the first.
    for (int cycle = 0; cycle < 2; ++cycle) {
      CAPTURE(cycle);
      std::vector<std::uint64_t> picked(n, 0);
      std::string unsmooth;  // the first prefix where some backend ran ahead of its share, if any
      for (std::uint64_t k = 1; k <= total; ++k) {
        const auto chosen = rr.pick(backends);
        REQUIRE(chosen.has_value());
        REQUIRE(*chosen < n);
        ++picked[*chosen];
        for (std::size_t i = 0; i < n && unsmooth.empty(); ++i) {
          const std::uint64_t fair_ceiling = (weights[i] * k + total - 1) / total;  // ceil(w_i * k / W)
          if (picked[i] > fair_ceiling + 1) {
            unsmooth = "backend " + std::to_string(i) + " picked " + std::to_string(picked[i]) + " times in " +
                       std::to_string(k);
          }
        }
      }
      CHECK(unsmooth.empty());
      for (std::size_t i = 0; i < n; ++i) CHECK(picked[i] == weights[i]);
    }
  }
}

TEST_CASE("least_connections: four idle equal backends are picked in turn") {
  LeastConnections lc(4);
  const auto backends = with_weights({1, 1, 1, 1});
  CHECK(picks_as_letters(lc, backends, 9) == "abcdabcda");
}

TEST_CASE("least_connections: the fewest active connections wins") {
  LeastConnections lc(3);
  auto backends = with_weights({1, 1, 1});
  backends[0].active_connections = 3;
  backends[1].active_connections = 1;
  backends[2].active_connections = 2;
  CHECK(lc.pick(backends) == std::optional<std::size_t>{1});
  CHECK(lc.pick(backends) == std::optional<std::size_t>{1});  // no tie: the cursor does not matter
}

TEST_CASE("least_connections: connections are counted per unit of weight") {
  LeastConnections lc(2);
  auto backends = with_weights({2, 1});
  backends[0].active_connections = 2;  // 2 per 2 = 1
  backends[1].active_connections = 1;  // 1 per 1 = 1: a tie
  CHECK(picks_as_letters(lc, backends, 4) == "abab");

  backends[0].active_connections = 3;  // 1.5 > 1
  CHECK(picks_as_letters(lc, backends, 2) == "bb");
  backends[1].active_connections = 2;  // 1.5 < 2
  CHECK(picks_as_letters(lc, backends, 2) == "aa");
}

TEST_CASE("least_connections: ties resume after the last winner and skip ineligible backends") {
  LeastConnections lc(4);
  auto backends = with_weights({1, 1, 1, 1});
  CHECK(picks_as_letters(lc, backends, 1) == "a");
  backends[1].eligible = false;
  CHECK(picks_as_letters(lc, backends, 4) == "cdac");
  backends[1].eligible = true;
  CHECK(picks_as_letters(lc, backends, 4) == "dabc");
}

TEST_CASE("least_connections: nothing eligible or nothing at all gives nullopt") {
  LeastConnections lc(2);
  auto backends = with_weights({1, 1});
  for (auto& b : backends) b.eligible = false;
  CHECK_FALSE(lc.pick(backends).has_value());
  backends[1].eligible = true;
  CHECK(lc.pick(backends) == std::optional<std::size_t>{1});

  LeastConnections empty(0);
  CHECK_FALSE(empty.pick({}).has_value());
}

TEST_CASE("least_connections: large counts and weights are compared without overflow") {
  LeastConnections lc(2);
  auto backends = with_weights({0xFFFFFFFFu, 1});
  backends[0].active_connections = 0xFFFFFFFEu;  // just under 1 per weight
  backends[1].active_connections = 1;            // exactly 1 per weight
  CHECK(lc.pick(backends) == std::optional<std::size_t>{0});

  backends[0] = BackendLoad{.weight = 5, .active_connections = 1u << 31};  // 2^31 / 5: about 4.3e8 per weight
  backends[1] = BackendLoad{.weight = 1, .active_connections = 1u << 30};  // 2^30 / 1: about 1.1e9 per weight
  CHECK(lc.pick(backends) == std::optional<std::size_t>{0});  // 5 * 2^30 wraps to 2^30 in 32 bits
  CHECK(lc.pick(backends) == std::optional<std::size_t>{0});
}

TEST_CASE("least_connections: equal backends share evenly, weighted ones in proportion") {
  // Each pick opens a connection that stays open: the counts must track the weights.
  LeastConnections lc(3);
  auto backends = with_weights({3, 2, 1});
  for (int n = 0; n < 600; ++n) {
    const auto chosen = lc.pick(backends);
    REQUIRE(chosen.has_value());
    ++backends[*chosen].active_connections;
  }
  CHECK(backends[0].active_connections == 300);
  CHECK(backends[1].active_connections == 200);
  CHECK(backends[2].active_connections == 100);
}

TEST_CASE("least_connections property: the pick always has the minimal ratio, ties go round") {
  std::mt19937 rng(777);
  std::uniform_int_distribution<std::uint32_t> weight_of(1, 20);
  std::uniform_int_distribution<std::uint32_t> active_of(0, 50);
  std::uniform_int_distribution<std::size_t> size_of(2, 8);
  std::bernoulli_distribution eligible_of(0.8);

  for (int trial = 0; trial < 500; ++trial) {
    const std::size_t n = size_of(rng);
    LeastConnections lc(n);
    std::optional<std::size_t> previous;
    for (int round = 0; round < 20; ++round) {
      std::vector<BackendLoad> backends(n);
      for (auto& b : backends) {
        b.weight = weight_of(rng);
        b.active_connections = active_of(rng) % 4 == 0 ? 0 : active_of(rng);  // plenty of idle ties
        b.eligible = eligible_of(rng);
      }
      CAPTURE(trial);
      CAPTURE(round);
      const auto chosen = lc.pick(backends);
      const bool any_eligible = std::any_of(backends.begin(), backends.end(), [](auto& b) { return b.eligible; });
      REQUIRE(chosen.has_value() == any_eligible);
      if (!chosen) continue;
      const BackendLoad& winner = backends[*chosen];
      REQUIRE(winner.eligible);
      // Minimal, and the first of the minimal ones cyclically after the previous winner.
      const std::size_t start = previous ? (*previous + 1) % n : 0;
      for (std::size_t step = 0; step < n; ++step) {
        const std::size_t i = (start + step) % n;
        if (!backends[i].eligible) continue;
        REQUIRE_FALSE(ratio_less(backends[i].active_connections, backends[i].weight, winner.active_connections,
                                 winner.weight));
        if (i == *chosen) break;
        // Anyone scanned before the winner must be strictly worse.
        REQUIRE(ratio_less(winner.active_connections, winner.weight, backends[i].active_connections,
                           backends[i].weight));
      }
      previous = chosen;
    }
  }
}
