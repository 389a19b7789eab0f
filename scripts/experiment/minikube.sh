#!/usr/bin/env bash
# The queueing sweep on the Minikube of scripts/minikube-up.sh (deploy/experiment): Sluice on a node of
# its own (minikube-m04), the node-pinned backends serve one request at a time after an exponential service time, Sluice runs each
# configuration in turn (its ConfigMap is rewritten; Sluice reloads it in place), and for every rho a
# sluice-loadgen Job offers Poisson load through Sluice's Service. Per point it keeps the loadgen's JSON
# summary and Sluice's /metrics before and after (through a port-forward of sluice-admin), and writes
# OUT/runs.csv: lambda, W (client), Wq and Lq (Sluice), utilisation, per-backend counts, Erlang C.
#
# Usage: scripts/experiment/minikube.sh [--rhos "0.5 0.7 0.8 0.9"] [--duration SECONDS] [--warmup SECONDS]
#          [--configs "shared:least_connections per_backend:round_robin per_backend:least_connections"]
#          [--out DIR] [--dry-run]
#   Needs kubectl (or `minikube kubectl --`), curl and /usr/bin/python3, and the image of this source
#   tree in the cluster (scripts/sluice-image.sh names it; scripts/minikube-up.sh builds and loads it),
#   with /usr/local/bin/sluice-loadgen (the Dockerfile builds it). Confidence intervals need the per-request
#   records of the local sweep (scripts/experiment.sh); here the summaries give means and percentiles.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

rhos="0.5 0.7 0.8 0.9"
configs="shared:least_connections per_backend:round_robin per_backend:least_connections"
duration=120
warmup=10
out="$root/results/minikube-$(date -u +%Y%m%dT%H%M%SZ)"
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rhos) rhos=${2:?}; shift 2 ;;
    --configs) configs=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "minikube experiment: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
kubectl_cmd=(kubectl)
command -v kubectl > /dev/null || kubectl_cmd=(minikube kubectl --)
k() { "${kubectl_cmd[@]}" -n sluice "$@"; }
mean_service_s=0.020   # deploy/experiment/backend-service-time.yaml
c=3

points=0
for _ in $configs; do for _ in $rhos; do points=$((points + 1)); done; done
echo "minikube experiment: $points points of $((warmup + duration)) s each; about $((points * (warmup + duration + 60) / 60)) min with the reloads and Job starts; results in $out"
image=$(bash "$root/scripts/sluice-image.sh" image)
deploy_dir=$(mktemp -d -t sluice-experiment.XXXXXX)
bash "$root/scripts/sluice-image.sh" kustomization "$root/deploy/experiment" "$deploy_dir"
if [ "$dry_run" -eq 1 ]; then
  "${kubectl_cmd[@]}" kustomize "$deploy_dir" > /dev/null && echo "deploy/experiment renders with $image"
  rm -rf "$deploy_dir"
  exit 0
fi
if ! minikube image ls | grep -q "[/]$image$\|^$image$"; then
  echo "minikube experiment: $image (this source tree) is not in the cluster: run scripts/minikube-up.sh first" >&2
  rm -rf "$deploy_dir"
  exit 1
fi

mkdir -p "$out"
forward_pid=""
cleanup() {
  [ -n "$forward_pid" ] && kill "$forward_pid" 2> /dev/null || true
  k delete job sluice-loadgen --ignore-not-found --wait=false > /dev/null 2>&1 || true
  rm -rf "$deploy_dir"
}
trap cleanup EXIT INT TERM

"${kubectl_cmd[@]}" apply -k "$deploy_dir" > /dev/null
k delete job sluice-loadgen --ignore-not-found --wait=true > /dev/null  # the Job of the apply: runs are ours
for d in sluice web-minikube web-minikube-m02 web-minikube-m03; do
  k rollout status "deploy/$d" --timeout=300s > /dev/null
done
admin_port=19100
k port-forward svc/sluice-admin "$admin_port:9100" > "$out/port-forward.log" 2>&1 &
forward_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$admin_port/healthz" > /dev/null 2>&1 && break; sleep 0.2; done

seed=1
for config in $configs; do
  mode=${config%%:*}
  policy=${config#*:}
  sed -e "s/^      mode: .*/      mode: $mode/" -e "s/^    policy: .*/    policy: $policy/" \
    "$root/deploy/experiment/sluice.yaml" > "$out/sluice-$mode-$policy.yaml"
  k create configmap sluice-config --from-file="sluice.yaml=$out/sluice-$mode-$policy.yaml" \
    --dry-run=client -o yaml | k apply -f - > /dev/null
  # The kubelet refreshes mounted ConfigMaps within about a minute; Sluice then reloads by itself.
  echo "config $mode + $policy: waiting for Sluice to reload it"
  for i in $(seq 180); do
    if curl -fsS "http://127.0.0.1:$admin_port/backends" 2> /dev/null |
      /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin)['services'][0]; sys.exit(s['queue_mode'] != '$mode' or s['policy'] != '$policy')"; then
      break
    fi
    [ "$i" -eq 180 ] && { echo "minikube experiment: Sluice did not take the $mode + $policy config in 180 s" >&2; exit 1; }
    sleep 1
  done
  for rho in $rhos; do
    rate=$(/usr/bin/python3 -c "print(f'{$rho * $c / $mean_service_s:.3f}')")
    point="$out/$mode-$policy-rho$rho"
    mkdir -p "$point"
    echo "  rho $rho: lambda $rate/s, seed $seed"
    curl -fsS "http://127.0.0.1:$admin_port/metrics" > "$point/metrics-before.txt"
    date +%s.%N > "$point/t-before"
    sed -e "s/--rate=.*/--rate=$rate/" -e "s/--seed=.*/--seed=$seed/" -e "s/--duration=.*/--duration=$((warmup + duration))s/" \
      -e "s/--warmup=.*/--warmup=${warmup}s/" -e "s|image: sluice:.*|image: $image|" \
      "$root/deploy/experiment/loadgen.job.yaml" > "$point/job.yaml"
    k apply -f "$point/job.yaml" > /dev/null
    if ! k wait --for=condition=complete job/sluice-loadgen --timeout="$((warmup + duration + 300))s" > /dev/null; then
      k logs job/sluice-loadgen > "$point/loadgen.log" 2>&1 || true
      echo "minikube experiment: the loadgen Job did not complete (see $point/loadgen.log)" >&2
      exit 1
    fi
    curl -fsS "http://127.0.0.1:$admin_port/metrics" > "$point/metrics-after.txt"
    date +%s.%N > "$point/t-after"
    k logs job/sluice-loadgen > "$point/loadgen.log" 2>&1
    k delete job sluice-loadgen --wait=true > /dev/null
    seed=$((seed + 1))
  done
done
kill "$forward_pid" 2> /dev/null || true
forward_pid=""
/usr/bin/python3 "$root/scripts/experiment/minikube_rows.py" --c "$c" --mean-service "$mean_service_s" "$out"
