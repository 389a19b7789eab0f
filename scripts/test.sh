#!/usr/bin/env bash
# Installs what is missing, builds Sluice and its tests (plain, ASan+UBSan, TSan; g++) and a Release
# build (clang++), and runs every test: unit tests of the pure logic, integration tests of the real
# daemon on loopback, the deployment's offline validation, the experiment's quick sweep and fuzzing.
# Ends with ctest's summary. Usage: scripts/test.sh [extra ctest arguments, e.g. -R round_robin]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=ON -DSLUICE_WERROR=ON
cmake --build build
# A user's build as the Dockerfile makes it: Release (-O3), no tests; -Werror here, so that a
# warning only an optimised build raises fails CI rather than a user's build. With clang++, so
# that CI compiles with both compilers (the build above is g++'s) at no extra cost.
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_WERROR=ON \
  -DCMAKE_CXX_COMPILER=clang++
cmake --build build-release
# Two tests at a time (the machines have two cores; wall-clock bounds in the tests allow for it):
# the suite then fits CI's time. SLUICE_TEST_JOBS=1 runs them one by one.
ctest --test-dir build --parallel "${SLUICE_TEST_JOBS:-2}" --output-on-failure --no-tests=error --timeout 300 "$@"
