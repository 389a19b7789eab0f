// The request-path fuzzer's inputs, replayed through a real HttpSession (fuzz/http_session_fuzzer.cpp,
// scripts/fuzz.sh --target session): the parser's seeds (fuzz/http-corpus/) and every request of the
// smuggling corpus, each under several backend answer styles and read splits, and every input in
// fuzz/http-session-regressions/ that once broke the request path, keep the rules of
// fuzz/http_session_properties.hpp, with http.pipeline_depth 1 and 8.

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "../../fuzz/http_session_properties.hpp"
#include "fuzz_inputs.hpp"
#include "smuggling_corpus.hpp"

namespace {

// The client's bytes under each answer style (0..5), three ways of cutting them into reads
// (whole, pieces of 1..8, pieces of 1..64), one request at a time and read ahead (pipeline depth 8).
void replay_client_bytes(const std::string& name, const std::string& bytes) {
  for (char style = 0; style < 6; ++style) {
    for (char seed : {'\x00', '\x05', '\x06'}) {
      for (std::uint32_t depth : {1u, 8u}) {
        const std::string violation = sluice::fuzz::check_http_session(std::string{style, seed} + bytes, nullptr, depth);
        CHECK_MESSAGE(violation.empty(), name << " (style " << int(style) << ", split " << int(seed) << ", depth "
                                              << depth << "): " << violation);
      }
    }
  }
}

}  // namespace

TEST_CASE("http session fuzz: every parser seed through a real session keeps the request path's properties") {
  const auto seeds = sluice::test::fuzz_inputs("http-corpus");
  CHECK(!seeds.empty());
  for (const sluice::test::FuzzInput& seed : seeds) replay_client_bytes(seed.name, seed.bytes);
}

TEST_CASE("http session fuzz: every request of the smuggling corpus through a real session keeps them") {
  for (const sluice::test::SmugglingCase& c : sluice::test::smuggling_corpus()) {
    replay_client_bytes("smuggling.txt:" + std::to_string(c.line), c.request);
  }
}

TEST_CASE("http session fuzz regressions: every input that once broke the request path now keeps them") {
  const auto inputs = sluice::test::fuzz_inputs("http-session-regressions");
  CHECK(!inputs.empty());
  for (const sluice::test::FuzzInput& input : inputs) {
    for (std::uint32_t depth : {1u, 8u}) {
      const std::string violation = sluice::fuzz::check_http_session(input.bytes, nullptr, depth);
      CHECK_MESSAGE(violation.empty(), input.name << " (depth " << depth << "): " << violation);
    }
  }
}
