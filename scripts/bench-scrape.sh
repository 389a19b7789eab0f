#!/usr/bin/env bash
# Does a scrape slow the data path? Sluice with `workers: 2` in front of an nginx backend, under a
# steady keep-alive load (wrk, 50 connections). Each round measures the proxied requests' p99
# latency three ways, 10 s each:
#   quiet    no scraper;
#   decoy    the scraper (one curl, one kept-alive connection, 50 requests a second) fetching a copy
#            of the /metrics text from a second nginx: what the scraper itself costs on these cores;
#   scraped  the same scraper on Sluice's /metrics.
# Prometheus scrapes from another machine; here the scraper shares the two cores with wrk, nginx and
# Sluice, so scraped/decoy is Sluice's own share and scraped/quiet the whole effect. The order of
# the three rotates between rounds; the medians are the figures. Not part of CI.
#
#   scripts/bench-scrape.sh [--rounds N] [--duration S] [--binary PATH]
#
# Defaults: 3 rounds of 10 s for each of the three, the binary of build/ (SLUICE_BINARY overrides).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
duration=10
binary=${SLUICE_BINARY:-$root/build/sluice}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --binary) binary=${2:?}; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-scrape: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for tool in wrk nginx curl; do
  command -v "$tool" > /dev/null || { echo "bench-scrape: $tool is missing (apt-get install wrk nginx curl)" >&2; exit 1; }
done
[ -x "$binary" ] || { echo "bench-scrape: no sluice at $binary (build first, or --binary)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)

start_nginx() {  # start_nginx NAME SERVER: an nginx of its own (one worker, prefix $work/NAME) with this server block
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" << EOF
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  $2
}
EOF
  nginx -p "$work/$1" -c "$work/$1/nginx.conf" &
  pids+=($!)
}
start_nginx nginx "server { listen 127.0.0.1:$backend_port; location / { return 200 \"ok\\n\"; } }"

cat > "$work/sluice.yaml" << EOF
workers: 2
admin: { bind: 127.0.0.1:$admin_port }
listeners: [ { name: web, bind: 127.0.0.1:$proxy_port, service: web } ]
services:
  - name: web
    health_check: { enabled: false }
    backends: [ { name: nginx, address: 127.0.0.1:$backend_port } ]
EOF
"$binary" --config "$work/sluice.yaml" > "$work/sluice.log" 2>&1 &
sluice_pid=$!
pids+=($sluice_pid)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$proxy_port/" > /dev/null 2>&1 && curl -sf "http://127.0.0.1:$admin_port/healthz" > /dev/null && break
  sleep 0.1
done

# p99 in ms from wrk --latency's "99%" line (its unit may be us, ms or s).
p99_ms() {
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                     else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f", v }' "$1"
}
run_wrk() {  # run_wrk OUT: one wrk run, its p99 printed
  wrk -t2 -c50 -d"${duration}s" --latency "http://127.0.0.1:$proxy_port/" > "$1"
  p99_ms "$1"
}
scraper() {  # scraper PORT: 50 requests a second for /metrics until killed, on one kept-alive connection
  exec curl -s --rate 50/s -o /dev/null "http://127.0.0.1:$1/metrics?[1-100000]"
}

# The decoy: a second nginx serving a copy of the /metrics text, as big as a scrape.
decoy_port=$(free_port)
mkdir -p "$work/decoy/html"
curl -sf "http://127.0.0.1:$admin_port/metrics" > "$work/decoy/html/metrics"
start_nginx decoy "server { listen 127.0.0.1:$decoy_port; root $work/decoy/html; }"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$decoy_port/metrics" > /dev/null && break; sleep 0.1; done

declare -A p99s=([quiet]="" [decoy]="" [scraped]="")
orders=("quiet decoy scraped" "scraped quiet decoy" "decoy scraped quiet")
for round in $(seq "$rounds"); do
  for kind in ${orders[$(((round - 1) % 3))]}; do
    scraper_pid=""
    case "$kind" in
      decoy) scraper "$decoy_port" & scraper_pid=$! ;;
      scraped) scraper "$admin_port" & scraper_pid=$! ;;
    esac
    p=$(run_wrk "$work/wrk-$round-$kind.txt")
    if [ -n "$scraper_pid" ]; then kill "$scraper_pid"; wait "$scraper_pid" 2> /dev/null || true; fi
    p99s[$kind]+=" $p"
    echo "round $round $kind: p99 $p ms, $(awk '/Requests\/sec/ { print $2 }' "$work/wrk-$round-$kind.txt") req/s"
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
q=$(median "${p99s[quiet]}")
d=$(median "${p99s[decoy]}")
s=$(median "${p99s[scraped]}")
workers=$(curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^sluice_worker_up/ { n++ } END { print n }')
echo "median p99: quiet $q ms, decoy $d ms, scraped $s ms"
echo "scraped/decoy $(ratio "$s" "$d") (Sluice's share), scraped/quiet $(ratio "$s" "$q") (with the scraper's own cost)" \
  "($workers worker_up series; binary $binary)"
kill -TERM "$sluice_pid"
wait "$sluice_pid" && echo "sluice exited 0 after SIGTERM"
