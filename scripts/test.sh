#!/usr/bin/env bash
# Installs what is missing, builds Sluice and its tests (plain, ASan+UBSan, TSan; g++) and the whole
# project once more with clang (ASan+UBSan and libFuzzer's instrumentation: the fuzzers), and runs
# every test: unit tests of the pure logic, integration tests of the real daemon on loopback, the
# deployment's offline validation, the experiment's quick sweep and fuzzing. Ends with ctest's
# summary. Usage: scripts/test.sh [extra ctest arguments, e.g. -R round_robin]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Unity builds (SLUICE_UNITY_BUILD, CMakeLists.txt): a clean build's sources compiled in batches.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=ON -DSLUICE_WERROR=ON -DSLUICE_UNITY_BUILD=ON
cmake --build build
# With clang, so that CI compiles with both compilers (the build above is g++'s), -Werror: every
# target of the project, instrumented for the fuzzers, which ctest runs below; the one clang build
# (scripts/fuzz.sh). Optimisation-only warnings are g++'s (-O2 above); clang's do not depend on -O.
SLUICE_UNITY_BUILD=ON bash scripts/fuzz.sh --target all --build-only
# Two tests at a time (the machines have two cores; wall-clock bounds in the tests allow for it):
# the suite then fits CI's time. SLUICE_TEST_JOBS=1 runs them one by one.
ctest --test-dir build --parallel "${SLUICE_TEST_JOBS:-2}" --output-on-failure --no-tests=error --timeout 300 "$@"
