#!/usr/bin/env bash
# Leak check after a load test. Builds the daemon in build-leak/ (ASan+UBSan with LeakSanitizer,
# the sluice_asan target; or plainly, to run under valgrind), starts sluice-backend backends and
# the daemon on loopback, drives a bounded mix of traffic through it (scripts/load_client.py:
# requests, large uploads, half-closed clients, resets while queued and while connected, idle
# clients closed by idle_timeout, queue timeouts and queue_full on a one-slot service, refused
# connects to a dead backend, admin scrapes), reloads it with SIGHUP three times (a changed
# config, a broken one, the first again), then stops it with SIGTERM and fails on any leak or
# sanitizer report, or a non-zero exit.
#
#   scripts/leak-check.sh [--valgrind] [--connections N] [--keep]
#
#   --valgrind       run the plain build under valgrind --leak-check=full (slower; default:
#                    the ASan build, whose LeakSanitizer checks at exit)
#   --connections N  client connections in the mix (default 800; 200 under valgrind)
#   --keep           keep the run directory (logs, configs) even when the check passes
set -euo pipefail
cd "$(dirname "$0")/.."

mode=asan
connections=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --valgrind) mode=valgrind; shift ;;
    --connections) connections="${2:?--connections needs a value}"; shift 2 ;;
    --connections=*) connections="${1#*=}"; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "leak-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$connections" ] || connections=$([ "$mode" = valgrind ] && echo 200 || echo 800)
[[ "$connections" =~ ^[0-9]+$ ]] || { echo "leak-check: --connections wants a number" >&2; exit 2; }

for tool in cmake ninja python3 curl; do
  command -v "$tool" > /dev/null || { echo "leak-check: needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ "$mode" = valgrind ] && ! command -v valgrind > /dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "leak-check: needs valgrind" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind
fi

# --- build (own directory; the daemon's own ASan+UBSan target) ---------------------------------
build=build-leak
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TESTS=ON \
  -DSLUICE_SANITIZED_TESTS=ON > /dev/null
daemon_target=$([ "$mode" = asan ] && echo sluice_asan || echo sluice)
nice -n 5 cmake --build "$build" --target "$daemon_target" sluice-backend -- -j2 | tail -n 1
daemon_bin=$build/$daemon_target
backend_bin=$build/tools/sluice-backend

# --- processes and cleanup ---------------------------------------------------------------------
run=$(mktemp -d "$PWD/$build/run-XXXXXX")
pids=()
daemon_pid=""
cleanup() {
  local status=$?
  for pid in "${pids[@]}" $daemon_pid; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}" $daemon_pid; do wait "$pid" 2> /dev/null || true; done
  if [ "$status" -ne 0 ] || [ "$keep" -eq 1 ]; then
    echo "leak-check: logs in $run"
  else
    rm -rf "$run"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $3 seconds for a line matching the regex $2 in file $1 and prints it.
wait_line() {
  local file=$1 pattern=$2 deadline=$((SECONDS + $3)) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 -E "$pattern" "$file" 2> /dev/null || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.2
  done
  echo "leak-check: no line /$pattern/ in $file within $3 s" >&2
  tail -n 20 "$file" >&2
  return 1
}

# Backends: a and b answer at once, slow holds each request 400 ms (its one slot makes a queue).
declare -A backend
for spec in "a:0" "b:0" "c:0" "slow:400ms"; do
  name=${spec%%:*}
  service=${spec#*:}
  args=(--listen 127.0.0.1:0 --name "$name")
  [ "$service" != 0 ] && args+=(--mean-service "$service" --distribution constant)
  "$backend_bin" "${args[@]}" > "$run/backend-$name.log" 2>&1 &
  pids+=($!)
  line=$(wait_line "$run/backend-$name.log" "listening on" 10)
  backend[$name]=${line##* }
done
# A port that refuses connects: bound once by the kernel's choice, then closed.
dead=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
port_of() { echo "${1##*:}"; }

# Config A and B differ in backends, policy and queue mode; broken is rejected (a reload failure).
write_config() {  # $1: a | b | broken
  local web_backends queue_mode=shared policy=least_connections
  if [ "$1" = b ]; then
    queue_mode=per_backend
    policy=round_robin
    web_backends="      - {name: a, address: \"${backend[a]}\", max_connections: 2}
      - {name: c, address: \"${backend[c]}\", max_connections: 3}
      - {name: dead, address: \"$dead\", max_connections: 2}"
  else
    web_backends="      - {name: a, address: \"${backend[a]}\", max_connections: 2}
      - {name: b, address: \"localhost:$(port_of "${backend[b]}")\", max_connections: 2}
      - {name: dead, address: \"$dead\", max_connections: 2}"
  fi
  {
    echo "drain_timeout: 3s"
    echo "log: {level: info, access_log: false}"
    # Port 0 stays in every config: a reload matches listeners by their configured bind address.
    echo "admin: {bind: \"127.0.0.1:0\"}"
    echo "listeners:"
    echo "  - {name: web, bind: \"127.0.0.1:0\", service: web, idle_timeout: 2s, max_connections: 300}"
    echo "  - {name: slow, bind: \"127.0.0.1:0\", service: slow, max_connections: 12}"
    echo "services:"
    echo "  - name: web"
    echo "    policy: $policy"
    echo "    connect_timeout: 500ms"
    echo "    retries: 2"
    echo "    resolve_interval: 1s"
    echo "    health_check: {interval: 500ms, timeout: 250ms, rise: 1, fall: 2}"
    echo "    queue: {mode: $queue_mode, max_length: 50, timeout: 2s}"
    echo "    backends:"
    echo "$web_backends"
    echo "  - name: slow"
    echo "    queue: {mode: shared, max_length: 4, timeout: 300ms}"
    echo "    backends:"
    echo "      - {name: slow, address: \"${backend[slow]}\", max_connections: 1}"
    [ "$1" = broken ] && echo "unknown_key: true"
  } > "$run/sluice.yaml.tmp"
  mv "$run/sluice.yaml.tmp" "$run/sluice.yaml"
}
write_config a

timeout_scale=1
if [ "$mode" = asan ]; then
  # LeakSanitizer runs at exit; UBSan aborts on the first error (the target's -fno-sanitize-recover).
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
  export LSAN_OPTIONS=exitcode=23
  "$daemon_bin" --config "$run/sluice.yaml" > "$run/daemon.log" 2>&1 &
else
  timeout_scale=5
  valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --num-callers=30 \
    --log-file="$run/valgrind.log" "$daemon_bin" --config "$run/sluice.yaml" > "$run/daemon.log" 2>&1 &
fi
daemon_pid=$!
line=$(wait_line "$run/daemon.log" "listening listener=web " $((20 * timeout_scale)))
web=$(sed -E 's/.*address=([^ ]+).*/\1/' <<< "$line")
line=$(wait_line "$run/daemon.log" "listening listener=slow " 5)
slow=$(sed -E 's/.*address=([^ ]+).*/\1/' <<< "$line")
line=$(wait_line "$run/daemon.log" "admin listening" 5)
admin=$(sed -E 's/.*address=([^ ]+).*/\1/' <<< "$line")
echo "leak-check: $mode daemon pid $daemon_pid, web $web, slow $slow, admin $admin; backends ${backend[*]}, dead $dead"

# --- load, with reloads in the middle ----------------------------------------------------------
python3 scripts/load_client.py mix --proxy "web=$web,web=$web,web=$web,slow=$slow" --admin "$admin" \
  --connections "$connections" --concurrency 16 --idle-wait $((10 * timeout_scale)) > "$run/mix.json" &
mix_pid=$!
pids+=($mix_pid)
reload() {  # $1: config name
  write_config "$1"
  kill -HUP "$daemon_pid"
  sleep $((2 * timeout_scale))
}
sleep $((2 * timeout_scale)); reload b
reload broken
reload a
reload b
wait "$mix_pid"
echo "leak-check: client outcomes $(cat "$run/mix.json")"
curl -sf "http://$admin/metrics" > "$run/metrics.txt"
grep -E '^sluice_(listener_connections_(accepted|rejected)_total|config_reloads_total)' "$run/metrics.txt" |
  grep -v ' 0$' | sed 's/^/  /'

# --- stop, and look at what the sanitizer or valgrind found ------------------------------------
kill -TERM "$daemon_pid"
set +e
timeout_s=$((60 * timeout_scale))
for _ in $(seq "$timeout_s"); do kill -0 "$daemon_pid" 2> /dev/null || break; sleep 1; done
if kill -0 "$daemon_pid" 2> /dev/null; then
  echo "leak-check: FAIL: the daemon did not exit within ${timeout_s}s of SIGTERM" >&2
  exit 1
fi
wait "$daemon_pid"
status=$?
set -e
daemon_pid=""

failures=()
[ "$status" -eq 0 ] || failures+=("daemon exit code $status")
if [ "$mode" = asan ]; then
  grep -qE 'ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:' "$run/daemon.log" &&
    failures+=("sanitizer report in $run/daemon.log")
  grep -A12 -E 'ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:' "$run/daemon.log" | head -n 60 || true
else
  summary=$(sed -n '/LEAK SUMMARY/,/suppressed/p' "$run/valgrind.log" | sed 's/^==[0-9]*== //')
  echo "${summary:-  valgrind: no leaks are possible (all heap blocks were freed)}" | sed 's/^/  /'
  grep -q 'ERROR SUMMARY: 0 errors' "$run/valgrind.log" || failures+=("valgrind errors in $run/valgrind.log")
fi
reloads_ok=$(sed -nE 's/^sluice_config_reloads_total\{result="success"\} ([0-9.e+]+)/\1/p' "$run/metrics.txt")
reloads_failed=$(sed -nE 's/^sluice_config_reloads_total\{result="failure"\} ([0-9.e+]+)/\1/p' "$run/metrics.txt")
[ "${reloads_ok%.*}" -ge 3 ] 2> /dev/null || failures+=("expected 3 successful reloads, metrics say ${reloads_ok:-none}")
[ "${reloads_failed%.*}" -ge 1 ] 2> /dev/null || failures+=("expected 1 failed reload, metrics say ${reloads_failed:-none}")

if [ ${#failures[@]} -gt 0 ]; then
  printf 'leak-check: FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "leak-check: PASS ($mode): $connections connections, 4 SIGHUP reloads (3 applied, 1 rejected), SIGTERM exit 0, no leak"
