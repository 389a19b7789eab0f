#!/usr/bin/env bash
# The built-in local default: installs what is missing, builds Sluice, starts three demo backends
# (sluice-backend on 127.0.0.1:9001-9003, each answering with its name and node) and runs Sluice
# in the foreground with config/demo.yaml. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build --target sluice sluice-backend

port_in_use() { ss -Htln "sport = :$1" | grep -q .; }
for port in 8080 9001 9002 9003; do
  if port_in_use "$port"; then
    echo "demo: port $port on this machine is already in use; stop what holds it (ss -tlnp 'sport = :$port')" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

nodes=(minikube minikube-m02 minikube-m03)
names=(node-a node-b node-c)
for i in 0 1 2; do
  NODE_NAME=${nodes[$i]} ./build/tools/sluice-backend --listen "127.0.0.1:900$((i + 1))" \
    --name "${names[$i]}" &
  pids+=($!)
done

cat <<'TRY'

Sluice demo: listener 127.0.0.1:8080 -> round_robin over node-a, node-b, node-c.
Try, from another terminal:
  curl -s http://127.0.0.1:8080/                       # answered by the next backend in turn
  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done
  printf 'GET / HTTP/1.0\r\n\r\n' | nc -N 127.0.0.1 8080
  curl -s http://127.0.0.1:9100/metrics | grep '^sluice_backend_connections_total'   # Prometheus
  curl -s http://127.0.0.1:9100/backends               # each backend's state, slots and queue (JSON)
  curl -s http://127.0.0.1:9100/scaling                # lambda, 1/mu and the backends Erlang C asks for
                                                       # ("warming_up" until 10 s and 20 requests)
Ctrl-C stops Sluice (it drains open sessions first) and the backends.

TRY
./build/sluice --config config/demo.yaml &
pids+=($!)
wait "${pids[-1]}" || true
