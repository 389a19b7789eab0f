#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the demo need, and the npm packages
# of the deploy/ validator (tools/deploy-check). Idempotent: what is already present is skipped.
#
#   scripts/install-deps.sh               everything (what CI runs)
#   scripts/install-deps.sh --build-only  only what building sluice and sluice-backend needs
#                                         (the Dockerfile's build stage)
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
case "${1:-}" in
  "") ;;
  --build-only) build_only=1 ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "install-deps: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake pkg-config ninja-build
  libuv1-dev libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libc-ares-dev nlohmann-json3-dev node-llhttp  # DNS; JSON; the HTTP/1.x parser (C sources)
)
if [ "$build_only" -eq 0 ]; then
  packages+=(
    doctest-dev libssl-dev python3 curl netcat-openbsd socat iproute2 procps
    prometheus  # promtool: `promtool check metrics` on /metrics; check/test rules of deploy/
    redis-server redis-tools postgresql-15  # real clients (redis-benchmark, pgbench) in the fault tests
    util-linux  # prlimit: the descriptor-exhaustion tests
    python3-numpy python3-matplotlib  # scripts/experiment: Erlang C, batch means, plots
    haproxy  # scripts/experiment (and bench): HAProxy measured beside Sluice; the PROXY protocol tests' front
    nginx wrk apache2-utils hey  # mode: http with real clients (curl, wrk, ab, hey) and an nginx backend
    libnginx-mod-stream  # nginx's stream module: a TCP backend that parses the PROXY protocol
    python3-fastapi python3-uvicorn  # mode: http: a FastAPI app under uvicorn as a backend
    dnsmasq-base  # a DNS server of the tests' own (dns.servers)
    clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer with ASan+UBSan, run by the test suite
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js for tools/deploy-check. Checked by command, not by package: a nodejs package from another
# repository may ship npm itself, and Debian's npm package would then conflict with it.
if [ "$build_only" -eq 0 ] && ! { command -v node && command -v npm; } > /dev/null; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
elif [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (or with sudo)" >&2
  exit 1
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "$build_only" -eq 1 ] && exit 0

# The validator's npm packages, exactly as locked. `npm ci` wipes and reinstalls node_modules, so it
# runs only when the lock file changed since the last install (its hash is kept beside the modules).
lock=tools/deploy-check/package-lock.json
stamp=tools/deploy-check/node_modules/.sluice-lock.sha256
if [ "$(sha256sum < "$lock")" != "$(cat "$stamp" 2>/dev/null)" ]; then
  echo "install-deps: npm ci in tools/deploy-check"
  timeout 600 npm ci --prefix tools/deploy-check --no-audit --no-fund --loglevel=error
  sha256sum < "$lock" > "$stamp"
else
  echo "install-deps: tools/deploy-check npm packages present"
fi
