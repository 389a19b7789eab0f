// libFuzzer target for the HTTP request parser (sluice::http::Parser, llhttp underneath): any bytes
// are fed as requests, whole, byte by byte, in pieces of 7 and with pauses after each head, and
// every run must keep the rules of http_properties.hpp (each ends in messages, a need_more, an
// upgrade or a clean error; never a crash; memory bounded by the parser's limits; the same outcome
// however the bytes are split). Deterministic: no clock, no randomness, no state between inputs.
// Built and run by scripts/fuzz.sh --target http; seeds in fuzz/http-corpus/ and the smuggling
// corpus (tests/data/smuggling.txt); findings go to fuzz/http-regressions/, replayed by
// tests/unit/http_fuzz_replay_test.cpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http_properties.hpp"
#include "violation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(static_cast<const char*>(static_cast<const void*>(data)), size);
  const std::string violation = sluice::fuzz::check_http_properties(input);
  sluice::fuzz::abort_on_violation("http_fuzzer", violation);
  return 0;
}
