// libFuzzer target for the request path of `mode: http`: the input (two control bytes, then what a
// client sends) goes through a real HttpSession on a libuv loop, over loopback, to a fake backend,
// and every run must keep the rules of http_session_properties.hpp (the session ends in bounded
// loop turns; every request answered or the connection closed; the backend receives exactly the
// client's requests, strict-valid, never a smuggled one). Deterministic: the harness moves on only
// when the loop is idle, never on a clock. Built with the whole daemon core by CMake
// (-DSLUICE_FUZZ=ON) and run by scripts/fuzz.sh --target session; findings go to
// fuzz/http-session-regressions/, replayed by tests/unit/http_session_fuzz_replay_test.cpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "http_session_properties.hpp"
#include "violation.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // warnings per input would drown the fuzzer's output
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(static_cast<const char*>(static_cast<const void*>(data)), size);
  const std::string violation = sluice::fuzz::check_http_session(input);
  sluice::fuzz::abort_on_violation("http_session_fuzzer", violation);
  return 0;
}
