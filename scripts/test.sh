#!/usr/bin/env bash
# Installs what is missing, builds Sluice and its tests (plain and ASan+UBSan) and runs every
# test: unit tests of the pure logic and integration tests of the real daemon on loopback.
# Ends with ctest's summary. Usage: scripts/test.sh [extra ctest arguments, e.g. -R round_robin]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=ON -DSLUICE_WERROR=ON
cmake --build build
ctest --test-dir build --output-on-failure --no-tests=error --timeout 300 "$@"
