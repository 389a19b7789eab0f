#!/usr/bin/env bash
# Soak test (minutes long; not part of scripts/test.sh or CI). Builds sluice and sluice-backend in
# build-soak/, then (scripts/soak.py) runs the daemon with two services on loopback:
#   echo  checksummed streams (1 B to 4 MiB of random bytes, SHA-256 compared) through Python
#         echo servers (scripts/load_client.py echo-server)
#   http  requests and uploads through sluice-backend, and client resets
# Two backends of each kind run on loopback and, as root, one of each on a "node": a network
# namespace joined by a veth pair in an unused /24 of 198.18.0.0/15. After a 10 s warm-up (the
# baseline of the daemon's RSS and fds, /proc/PID/status and /proc/PID/fd), a fault is injected
# every few seconds, in turn: a backend SIGKILLed and restarted on its port 1-3 s later; the
# node's link down for 2-4 s; a SIGHUP reload alternating two configs (policy, queue mode,
# weights). At the end: every completed echo transfer's checksum must match; every failed
# transfer must overlap a fault (plus a grace period); RSS and fds back to the baseline (RSS
# within 25% + 4 MiB, fds within 2); no connection left; exit code 0 on SIGTERM. Prints the
# figures; exits 0 on PASS, 1 on FAIL. Everything stops by itself; Ctrl-C cleans up.
#
#   scripts/soak.sh [--minutes N] [--fault-every SECONDS] [--concurrency N] [--no-netns]
#
#   --minutes N          length of the faulted run (default 5)
#   --fault-every S      mean seconds between faults (default 6)
#   --concurrency N      client threads (default 6)
#   --no-netns           loopback only (no node, no link faults); the default needs root
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=5
fault_every=6
concurrency=6
netns=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a value}"; shift 2 ;;
    --minutes=*) minutes="${1#*=}"; shift ;;
    --fault-every) fault_every="${2:?--fault-every needs a value}"; shift 2 ;;
    --fault-every=*) fault_every="${1#*=}"; shift ;;
    --concurrency) concurrency="${2:?--concurrency needs a value}"; shift 2 ;;
    --concurrency=*) concurrency="${1#*=}"; shift ;;
    --no-netns) netns=off; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "soak: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: --minutes wants a number" >&2; exit 2; }
[[ "$fault_every" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: --fault-every wants a number" >&2; exit 2; }
[[ "$concurrency" =~ ^[0-9]+$ ]] || { echo "soak: --concurrency wants a number" >&2; exit 2; }
for tool in cmake ninja python3; do
  command -v "$tool" > /dev/null || { echo "soak: needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ "$netns" = auto ] && { [ "$(id -u)" -ne 0 ] || ! command -v ip > /dev/null; }; then
  echo "soak: not root or no ip(8): loopback only, no node-link faults"
  netns=off
fi

build=build-soak
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=OFF > /dev/null
nice -n 5 cmake --build "$build" --target sluice sluice-backend -- -j2 | tail -n 1

run=$(mktemp -d "$PWD/$build/run-XXXXXX")
tag=$$
soak_pid=""
cleanup() {
  local status=$?
  if [ -n "$soak_pid" ] && kill -0 "$soak_pid" 2> /dev/null; then
    kill -TERM "$soak_pid" 2> /dev/null || true  # soak.py stops its processes and the namespace
    for _ in $(seq 20); do kill -0 "$soak_pid" 2> /dev/null || break; sleep 0.5; done
    kill -KILL "$soak_pid" 2> /dev/null || true
  fi
  # Whatever is left of this run's namespace (soak.py normally removes it).
  if ip netns list 2> /dev/null | grep -qw "sluice-soak-$tag"; then
    for pid in $(ip netns pids "sluice-soak-$tag" 2> /dev/null); do kill -KILL "$pid" 2> /dev/null || true; done
    ip link del "sks${tag}h" 2> /dev/null || true
    ip netns del "sluice-soak-$tag" 2> /dev/null || true
  fi
  echo "soak: logs in $run"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A hard stop well after the planned end: the run must never outlive its time.
limit=$(python3 -c "print(int(float('$minutes') * 60 + 300))")
timeout --signal=TERM --kill-after=30 "$limit" \
  python3 scripts/soak.py --minutes "$minutes" --fault-every "$fault_every" --concurrency "$concurrency" \
  --netns "$netns" --daemon "$build/sluice" --backend "$build/tools/sluice-backend" --run-dir "$run" \
  --tag "$tag" &
soak_pid=$!
wait "$soak_pid"
