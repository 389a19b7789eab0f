#!/usr/bin/env bash
# Fuzzes the config parser (fuzz/config_fuzzer.cpp), the HTTP request parser (fuzz/http_fuzzer.cpp)
# or the request path of mode: http (fuzz/http_session_fuzzer.cpp: a real HttpSession on a libuv loop
# with a fake backend) with libFuzzer for a bounded time: builds the target with clang++
# -fsanitize=fuzzer,address,undefined (one CMake build of the whole project for every target, every
# object instrumented, in build-fuzz/cmake/), seeds it (config: fuzz/corpus/ and the project's
# configs; http and session: fuzz/http-corpus/ and the requests of tests/data/smuggling.txt, for
# session each behind two control bytes), writes the inputs it finds to build-fuzz/corpus/,
# build-fuzz/http-corpus/ or build-fuzz/session-corpus/ (ignored by git), and replays every crash,
# leak, timeout or out-of-memory input it saved to print why.
# Prints executions, exec/s, coverage and findings; exits 1 when anything was found.
# scripts/test.sh builds every target first (--target all --build-only: also its clang -Werror
# build) and runs each for 20 s (ctest entries); the default 120 s, or longer, by hand or in a
# nightly job.
#
#   scripts/fuzz.sh [--target config|http|session|all] [--seconds N] [--max-len BYTES] [--no-fork]
#                   [--skip-known] [--build-only]
#
#   --target T       config (default), http or session; all (with --build-only): the whole
#                    instrumented project, every fuzzer, the daemon and the tools
#   --seconds N      fuzzing time (default 120)
#   --max-len BYTES  longest input tried (default 16384; the parser takes up to 1 MiB)
#   --no-fork        one process that stops at the first finding (default: -fork=1
#                    -ignore_crashes=1, so one run collects every finding)
#   --skip-known     config: step around the daemon bugs already kept in fuzz/regressions/ (skip inputs
#                    on which yaml-cpp's LoadAll loops; don't check hosts for control characters)
#                    to look for new ones; see fuzz/config_fuzzer.cpp
#   --build-only     build the target and exit
#
# SLUICE_UNITY_BUILD=ON (or OFF) in the environment sets the build's batches (CMakeLists.txt), as
# scripts/test.sh does; unset, the build keeps what it had.
#
# Found something? Copy the input into fuzz/regressions/ (http: fuzz/http-regressions/, session:
# fuzz/http-session-regressions/) with a name that says what it broke;
# tests/unit/fuzz_regressions_test.cpp (http_fuzz_replay_test.cpp, http_session_fuzz_replay_test.cpp)
# then replays it in every test run.
set -euo pipefail
cd "$(dirname "$0")/.."

target=config
seconds=120
max_len=16384
fork=1
build_only=0
skip_known=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:?--target needs a value}"; shift 2 ;;
    --target=*) target="${1#*=}"; shift ;;
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --max-len) max_len="${2:?--max-len needs a value}"; shift 2 ;;
    --max-len=*) max_len="${1#*=}"; shift ;;
    --no-fork) fork=0; shift ;;
    --skip-known) skip_known=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "fuzz: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz: --seconds wants a positive integer" >&2; exit 2; }
[[ "$max_len" =~ ^[0-9]+$ && "$max_len" -gt 0 ]] || { echo "fuzz: --max-len wants a positive integer" >&2; exit 2; }
[[ "$target" == config || "$target" == http || "$target" == session || "$target" == all ]] ||
  { echo "fuzz: --target is config, http, session or all, not '$target'" >&2; exit 2; }
[[ "$target" != all || "$build_only" -eq 1 ]] || { echo "fuzz: --target all goes with --build-only" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------------
# clang++ and its libFuzzer/sanitizer runtimes (Debian 12: clang 14, libclang-rt-14-dev); the
# yaml-cpp headers and library come with the project's own dependencies.
need=()
command -v clang++ > /dev/null || need+=(clang)
dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "install ok installed" ||
  need+=(libclang-rt-14-dev)
dpkg-query -W -f='${Status}' libyaml-cpp-dev 2>/dev/null | grep -q "install ok installed" ||
  need+=(libyaml-cpp-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz: missing ${need[*]}; run as root (or install them)" >&2
    exit 1
  fi
  echo "fuzz: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# --- build -------------------------------------------------------------------------------------
out=build-fuzz
binary=$out/${target}_fuzzer
# One CMake build in build-fuzz/cmake/ serves every target: the whole project (core, tools and
# the three fuzzers) with every object instrumented, compiled once; CMake rebuilds what changed.
# With -Werror, it is also the clang build of scripts/test.sh. -O1 -g: sanitizer reports with
# lines; -fno-sanitize-recover: UB aborts, so libFuzzer keeps it.
command -v cmake > /dev/null && command -v ninja > /dev/null ||
  { echo "fuzz: building needs cmake and ninja (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$out"
# ctest runs the targets two at a time: one build directory takes one build at a time.
exec 9> "$out/build.lock"
flock 9
# Only when asked: the ctest entries run this script again without it, and must not flip the cached
# choice (a rebuild of every file) before fuzzing.
unity=()
[ -n "${SLUICE_UNITY_BUILD:-}" ] && unity=(-DSLUICE_UNITY_BUILD="$SLUICE_UNITY_BUILD")
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link"
nice -n 10 cmake -S . -B "$out/cmake" -G Ninja -DCMAKE_BUILD_TYPE=None -DSLUICE_TESTS=OFF \
  -DSLUICE_SANITIZED_TESTS=OFF -DSLUICE_WERROR=ON -DSLUICE_FUZZ=ON "${unity[@]}" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > "$out/cmake.log" ||
  { cat "$out/cmake.log" >&2; exit 1; }
if [ "$target" = all ]; then
  echo "fuzz: building everything in $out/cmake"
  nice -n 10 cmake --build "$out/cmake"
  exit 0
fi
cmake_target=${target}_fuzzer
[ "$target" = session ] && cmake_target=http_session_fuzzer
nice -n 10 cmake --build "$out/cmake" --target "$cmake_target"
cp "$out/cmake/$cmake_target" "$binary"
flock -u 9
[ "$build_only" -eq 1 ] && { echo "fuzz: built $binary"; exit 0; }

# --- run ---------------------------------------------------------------------------------------
run_id=$target-$(date +%Y%m%d-%H%M%S)
artifacts=$out/artifacts/$run_id
# New inputs land in the first corpus directory; build* is ignored by git. A --skip-known run keeps
# its own: its inputs may hang the parser in a run that does not skip (the stall check is
# instrumented too, so such inputs count as new coverage there).
corpus=$out/corpus
[ "$target" = http ] && corpus=$out/http-corpus
[ "$target" = session ] && corpus=$out/session-corpus
[ "$skip_known" -eq 1 ] && corpus=$corpus-skip-known
log=$out/fuzz-$run_id.log
mkdir -p "$artifacts" "$corpus"
# The config parser takes up to 1 MiB; the HTTP parser keeps at most a head (4 KiB in the target)
# and a trailer section, whatever the input: a 64 MiB allocation is a finding there.
malloc_limit=1024
[ "$target" = http ] && malloc_limit=64
[ "$target" = session ] && malloc_limit=256  # a session's buffers are 64 KiB chunks
flags=(
  -dict=fuzz/$([ "$target" = config ] && echo yaml || echo http).dict
  -max_total_time="$seconds"
  -timeout=10              # one input parsing longer than this is a finding (a hang)
  -rss_limit_mb=2048       # and so is a process above 2 GiB
  -malloc_limit_mb="$malloc_limit"  # or a single allocation above this
  -max_len="$max_len"
  -artifact_prefix="$artifacts/"
  -print_final_stats=1
  -detect_leaks=1
)
[ "$fork" -eq 1 ] && flags+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
# Seeds: fuzz/corpus (copies of the project's configs, flow style, anchors, broken configs) and
# the project's configs as they are now. Not fuzz/regressions/: those crash or hang the parser
# until their fix lands (tests/unit/fuzz_regressions_test.cpp replays them).
seeds=(fuzz/corpus config tests/unit/configs)
if [ "$target" != config ]; then
  # Each request of the smuggling corpus as a seed file (its escapes and [[N*TEXT]] expanded).
  smuggling=$out/http-smuggling-seeds
  rm -rf "$smuggling" && mkdir -p "$smuggling"
  /usr/bin/python3 - tests/data/smuggling.txt "$smuggling" <<'PY'
import re, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if not line.strip() or line.startswith("#"):
        continue
    raw = line.rstrip("\n").split("|", 3)[3][1:]
    raw = re.sub(r"\[\[(\d+)\*(.*?)\]\]", lambda m: m.group(2) * int(m.group(1)), raw)
    data = re.sub(rb"\\(x[0-9a-fA-F]{2}|.)", lambda m: {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0",
                  b"\\": b"\\"}.get(m.group(1)) or bytes([int(m.group(1)[1:], 16)]), raw.encode())
    open(f"{sys.argv[2]}/line-{n}.http", "wb").write(data)
PY
  seeds=(fuzz/http-corpus "$smuggling")
fi
if [ "$target" = session ]; then
  # The same seeds behind the two control bytes (the backend's answer style, the read split), each
  # in two variants.
  prefixed=$out/session-seeds
  rm -rf "$prefixed" && mkdir -p "$prefixed"
  /usr/bin/python3 - "$prefixed" fuzz/http-corpus/* "$smuggling"/* <<'PY'
import os, sys
for i, path in enumerate(sys.argv[2:]):
    data = open(path, "rb").read()
    for j, prefix in enumerate((bytes([i % 6, 0]), bytes([(i + 3) % 6, 5 + i % 2]))):
        open(f"{sys.argv[1]}/{i}-{j}-{os.path.basename(path)}", "wb").write(prefix + data)
PY
  seeds=("$prefixed")
fi

echo "fuzz: $seconds s, max_len $max_len, fork $fork, skip_known $skip_known; log $log"
start=$(date +%s)
set +e
# One core at low priority: the machine is shared. The fuzzer stops itself at -max_total_time;
# the outer timeout is only a backstop.
SLUICE_FUZZ_SKIP_KNOWN=$skip_known ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  timeout --kill-after=30 $((seconds + 120)) nice -n 10 "$binary" "${flags[@]}" "$corpus" "${seeds[@]}" \
  > "$log" 2>&1
status=$?
set -e
elapsed=$(($(date +%s) - start))

# --- figures -----------------------------------------------------------------------------------
# Progress lines: "#N ... cov: C ft: F corp: K ... exec/s: E" (plain) or "#N: cov: C ft: F corp: K
# exec/s E oom/timeout/crash: a/b/c ..." (fork mode). The last one has the final numbers.
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<< "$last")
cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<< "$last")
ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<< "$last")
corp=$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<< "$last")
stat_execs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | tail -n 1)
[ -n "$stat_execs" ] && execs=$stat_execs
rate=$(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))

findings=()
while IFS= read -r -d '' f; do findings+=("$f"); done < <(find "$artifacts" -type f \
  \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) -print0 | sort -z)

echo
echo "fuzz: duration ${elapsed}s, executions ${execs:-?} (${rate}/s), coverage cov ${cov:-?} ft ${ft:-?}," \
     "corpus ${corp:-?} inputs ($(find "$corpus" -type f | wc -l) files in $corpus)"
if [ ${#findings[@]} -eq 0 ]; then
  if [ "$status" -ne 0 ]; then
    echo "fuzz: libFuzzer exited $status without saving an input; see $log" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  echo "fuzz: findings 0"
  exit 0
fi

echo "fuzz: findings ${#findings[@]} (inputs in $artifacts):"
for f in "${findings[@]}"; do
  # Replay each once to say what it is: the sanitizer's SUMMARY or the violated property.
  why=$(ASAN_OPTIONS=detect_leaks=1 timeout 60 "$binary" -timeout=10 -rss_limit_mb=2048 "$f" 2>&1 |
        grep -m1 -E 'SUMMARY|property violated|ERROR: libFuzzer|runtime error' || true)
  echo "  $(basename "$f") ($(stat -c %s "$f") bytes): ${why:-did not reproduce on replay}"
done
exit 1
