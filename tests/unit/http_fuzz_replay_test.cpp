// The HTTP fuzzer's inputs, replayed (fuzz/http_fuzzer.cpp, scripts/fuzz.sh --target http): every
// seed in fuzz/http-corpus/, every input in fuzz/http-regressions/ that once broke the parser, and
// every request of the smuggling corpus keep the rules of fuzz/http_properties.hpp.

#include <doctest/doctest.h>

#include <string>

#include "../../fuzz/http_properties.hpp"
#include "fuzz_inputs.hpp"
#include "smuggling_corpus.hpp"

namespace {

void replay_directory(const std::string& directory) {
  const auto inputs = sluice::test::fuzz_inputs(directory);
  CHECK(!inputs.empty());
  for (const sluice::test::FuzzInput& input : inputs) {
    const std::string violation = sluice::fuzz::check_http_properties(input.bytes);
    CHECK_MESSAGE(violation.empty(), input.name << ": " << violation);
  }
}

}  // namespace

TEST_CASE("http fuzz corpus: every seed keeps the parser's properties") { replay_directory("http-corpus"); }

TEST_CASE("http fuzz regressions: every input that once broke the parser now keeps its properties") {
  replay_directory("http-regressions");
}

TEST_CASE("http fuzz properties: every request of the smuggling corpus keeps them") {
  for (const sluice::test::SmugglingCase& c : sluice::test::smuggling_corpus()) {
    CAPTURE(c.line);
    CHECK(sluice::fuzz::check_http_properties(c.request) == "");
  }
}
