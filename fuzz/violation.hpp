#pragma once
// What every libFuzzer target (config, http, session) does with a broken property: say which, and
// abort, so that libFuzzer reports a crash and saves the input.

#include <cstdio>
#include <cstdlib>
#include <string>

namespace sluice::fuzz {

inline void abort_on_violation(const char* target, const std::string& violation) {
  if (violation.empty()) return;
  std::fprintf(stderr, "%s: property violated: %s\n", target, violation.c_str());
  std::abort();
}

}  // namespace sluice::fuzz
