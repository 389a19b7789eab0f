// The rise/fall state machine of backend health.

#include <doctest/doctest.h>

#include "sluice/health/health_state.hpp"

using sluice::HealthEvidence;
using sluice::HealthState;

TEST_CASE("health: an up backend falls after `fall` consecutive failures, not before") {
  HealthState health(2, 3, true);
  CHECK_FALSE(health.record(HealthEvidence::check_failed));
  CHECK_FALSE(health.record(HealthEvidence::check_failed));
  CHECK(health.up());
  CHECK(health.run() == 2);
  CHECK(health.record(HealthEvidence::check_failed));
  CHECK_FALSE(health.up());
  CHECK(health.run() == 0);
}

TEST_CASE("health: any success breaks a run of failures") {
  HealthState health(2, 3, true);
  health.record(HealthEvidence::check_failed);
  health.record(HealthEvidence::check_failed);
  CHECK_FALSE(health.record(HealthEvidence::check_passed));
  health.record(HealthEvidence::check_failed);
  health.record(HealthEvidence::check_failed);
  CHECK_FALSE(health.record(HealthEvidence::connect_passed));  // a client got through
  CHECK(health.run() == 0);
  CHECK(health.up());
}

TEST_CASE("health: failed client connects and failed checks count in one run (passive checks)") {
  HealthState health(2, 3, true);
  CHECK_FALSE(health.record(HealthEvidence::connect_failed));
  CHECK_FALSE(health.record(HealthEvidence::check_failed));
  CHECK(health.record(HealthEvidence::connect_failed));
  CHECK_FALSE(health.up());
}

TEST_CASE("health: a down backend rises after `rise` consecutive passed checks, only checks") {
  HealthState health(2, 3, false);
  // Client connects begun before it fell prove nothing either way.
  CHECK_FALSE(health.record(HealthEvidence::connect_passed));
  CHECK_FALSE(health.record(HealthEvidence::connect_failed));
  CHECK(health.run() == 0);
  CHECK_FALSE(health.record(HealthEvidence::check_passed));
  CHECK_FALSE(health.record(HealthEvidence::check_failed));  // the run starts over
  CHECK_FALSE(health.record(HealthEvidence::check_passed));
  CHECK_FALSE(health.up());
  CHECK(health.record(HealthEvidence::check_passed));
  CHECK(health.up());
}

TEST_CASE("health: rise 1 and fall 1 flip on every change of evidence") {
  HealthState health(1, 1, true);
  CHECK(health.record(HealthEvidence::check_failed));
  CHECK_FALSE(health.record(HealthEvidence::check_failed));
  CHECK(health.record(HealthEvidence::check_passed));
  CHECK_FALSE(health.record(HealthEvidence::check_passed));
  CHECK(health.record(HealthEvidence::connect_failed));
}

TEST_CASE("health: reset sets the state and forgets the run") {
  HealthState health(2, 3, true);
  health.record(HealthEvidence::check_failed);
  health.record(HealthEvidence::check_failed);
  health.reset(false);
  CHECK_FALSE(health.up());
  CHECK(health.run() == 0);
  health.record(HealthEvidence::check_passed);
  health.reset(true);
  CHECK(health.up());
  CHECK_FALSE(health.record(HealthEvidence::check_failed));
}
