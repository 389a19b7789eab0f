// The one detector of yaml-cpp's endless LoadAll (daemon/config/yaml_stall.cpp), which the config
// parser asks before LoadAll and the fuzzer uses to skip the known case.

#include <doctest/doctest.h>

#include <yaml-cpp/exceptions.h>

#include "sluice/config/yaml_stall.hpp"

TEST_CASE("yaml stall: a ',' at document level is found where LoadAll would loop, other input is not") {
  const auto trailing = sluice::loadall_stall("{listeners: [a]},\n");
  REQUIRE(trailing.has_value());
  CHECK(trailing->line == 0);
  CHECK(trailing->column == 16);
  const auto lone = sluice::loadall_stall("workers: 1\n---\n,\n");
  REQUIRE(lone.has_value());
  CHECK(lone->line == 2);

  CHECK_FALSE(sluice::loadall_stall("workers: 1\n").has_value());
  CHECK_FALSE(sluice::loadall_stall("a: 1\n---\nb: 2\n").has_value());
  CHECK_FALSE(sluice::loadall_stall("").has_value());
  CHECK_THROWS_AS(sluice::loadall_stall("a: [1, 2\n"), YAML::ParserException);  // as LoadAll would
}
