#!/usr/bin/env bash
# The proxy benchmark: Sluice vs HAProxy 2.6 (mode tcp, roundrobin/leastconn) vs nginx stream
# (round robin/least_conn) vs no proxy, on loopback, each proxy single-threaded on CPU 0 and the
# load generators and backends on CPU 1. Prints a markdown table (medians of >= 3 repetitions,
# ratios to HAProxy from the same repetition, spreads) and writes everything to
# results/bench-<UTC time>/ (gitignored). Not part of CI. See docs/bench.md.
#
#   scripts/bench.sh --quick                    a one-minute smoke run (1 repetition, 1 s tests)
#   scripts/bench.sh                            the full run (3 repetitions, 10 s tests; ~30 min)
#   scripts/bench.sh --wait-quiet 1800          first wait (up to 30 min) for load average < 1.0
#   scripts/bench.sh --profile-only             only the Sluice profile (callgrind, perf)
#   scripts/bench.sh --help                     every option (of tools/bench/bench.py)
#
# Installs what is missing with apt-get (haproxy nginx libnginx-mod-stream wrk iperf3 linux-perf
# valgrind), builds Sluice in build-bench/ (Release, -O2), the same without the exact metrics in
# build-bench-nometrics/ (SLUICE_EXACT_METRICS=OFF, for the metrics-cost figure), and
# tools/bench/idleconns.c with the system C compiler into build-bench/bench-tools/.
# SLUICE_BINARY overrides the Sluice binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3  # Debian's; the driver needs only the standard library

case " $* " in
  *" --help "* | *" -h "*) exec "$python" "$root/tools/bench/bench.py" --help ;;
esac

need=()
for pair in haproxy:haproxy nginx:nginx wrk:wrk iperf3:iperf3 perf:linux-perf valgrind:valgrind \
            callgrind_annotate:valgrind cc:gcc taskset:util-linux ss:iproute2 cmake:cmake ninja:ninja-build; do
  command -v "${pair%%:*}" > /dev/null 2>&1 || need+=("${pair#*:}")
done
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: missing ${need[*]}: run as root or install them" >&2
    exit 1
  fi
  # Debian starts no service from a package when policy-rc.d says so; the backends here are our own.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
fi

build="$root/build-bench"
if [ -z "${SLUICE_BINARY:-}" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DSLUICE_TESTS=OFF > /dev/null
  cmake --build "$build" --target sluice > /dev/null
  export SLUICE_BINARY="$build/sluice"
fi
# The same build without the exact integrals and histograms, for the metrics-off figure.
cmake -S "$root" -B "$build-nometrics" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DSLUICE_TESTS=OFF -DSLUICE_EXACT_METRICS=OFF > /dev/null
cmake --build "$build-nometrics" --target sluice > /dev/null
mkdir -p "$build/bench-tools"
cc -O2 -Wall -Wextra -Werror -o "$build/bench-tools/idleconns" "$root/tools/bench/idleconns.c"

args=("$@")
profile_only=0
for a in "$@"; do [ "$a" = "--profile-only" ] && profile_only=1; done
out="$root/results/bench-$(date -u +%Y%m%dT%H%M%SZ)"
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --out) out=${args[$((i + 1))]} ;;
    --out=*) out=${args[$i]#--out=} ;;
  esac
done
if [[ " $* " != *" --out"* ]]; then args+=(--out "$out"); fi

if [ "$profile_only" -eq 1 ] || [[ " $* " == *" --profile "* ]]; then
  # The profile wants symbols and line numbers: the same -O2 build with -g, in its own directory.
  cmake -S "$root" -B "$build-prof" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -g -DNDEBUG" \
    -DSLUICE_TESTS=OFF > /dev/null
  cmake --build "$build-prof" --target sluice > /dev/null
  args+=(--sluice-prof "$build-prof/sluice")
fi

# Each idle connection is one descriptor here and two in the proxy.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
exec "$python" "$root/tools/bench/bench.py" --sluice "$SLUICE_BINARY" --sluice-nometrics "$build-nometrics/sluice" \
  --idleconns "$build/bench-tools/idleconns" "${args[@]}"
