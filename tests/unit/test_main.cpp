#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

// The code under test logs state changes; that output is noise here unless asked for.
int main(int argc, char** argv) {
  if (std::getenv("SLUICE_TEST_LOG") == nullptr) spdlog::set_level(spdlog::level::off);
  return doctest::Context(argc, argv).run();
}
