#!/usr/bin/env bash
# Starts a 3-node Minikube, builds the Sluice image into every node, deploys Sluice, its three
# node-pinned backends and Prometheus (deploy/overlays/OVERLAY), waits for the rollout and prints
# the URLs. Needs minikube and a driver (e.g. Docker); kubectl is optional (`minikube kubectl --`).
#
# Usage: scripts/minikube-up.sh [--overlay NAME | --scaling NAME] [--dry-run]
#   --overlay NAME  deploy/overlays/NAME: plain-prometheus (default) or prometheus-operator (needs
#                   the operator's CRDs in the cluster)
#   --scaling NAME  deploy/scaling/NAME instead: plain-prometheus plus the backend pool web-pool,
#                   Sluice's service web on that pool (deploy/scaling/pool/sluice.yaml), the pool
#                   scaled on sluice_service_recommended_backends by NAME: keda or
#                   prometheus-adapter, which it installs with helm (needs helm)
#   --dry-run       validate deploy/ offline (scripts/validate-deploy.sh), then print the commands
#                   instead of running them
#   MINIKUBE_START_ARGS  more `minikube start` flags, e.g. "--driver=docker --cpus=2 --memory=3g"
set -euo pipefail
cd "$(dirname "$0")/.."

# The profile names the nodes (minikube, minikube-m02, minikube-m03), and config/minikube.yaml and
# the backends' nodeSelectors pin to exactly those names.
profile=minikube
namespace=sluice
image=sluice:dev
overlay=plain-prometheus
scaling=""
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=${2:?--overlay needs a name}; shift 2 ;;
    --scaling) scaling=${2:?--scaling needs a name: keda or prometheus-adapter}; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "minikube-up: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
dir=deploy/overlays/$overlay
if [ -n "$scaling" ]; then
  case "$scaling" in
    keda | prometheus-adapter) ;;
    *) echo "minikube-up: --scaling $scaling: keda or prometheus-adapter" >&2; exit 2 ;;
  esac
  # The scaling overlays build on plain-prometheus: KEDA and the adapter query that Prometheus.
  [ "$overlay" = plain-prometheus ] || { echo "minikube-up: --scaling includes plain-prometheus; drop --overlay $overlay" >&2; exit 2; }
  dir=deploy/scaling/$scaling
fi
[ -d "$dir" ] || { echo "minikube-up: no overlay $dir" >&2; exit 2; }

run() {  # prints the command; runs it unless --dry-run
  printf '+'; printf ' %q' "$@"; echo
  [ "$dry_run" -eq 1 ] || "$@"
}
kubectl_cmd=(kubectl)
command -v kubectl > /dev/null || kubectl_cmd=(minikube -p "$profile" kubectl --)
k() { run "${kubectl_cmd[@]}" "$@"; }

if [ "$dry_run" -eq 1 ]; then
  bash scripts/validate-deploy.sh
  echo
  echo "minikube-up: --dry-run: the commands it would run:"
else
  for tool in minikube timeout ${scaling:+helm}; do
    command -v "$tool" > /dev/null || { echo "minikube-up: $tool is not installed" >&2; exit 1; }
  done
fi

# shellcheck disable=SC2086  # MINIKUBE_START_ARGS is a list of flags
run timeout 900 minikube start -p "$profile" --nodes 3 ${MINIKUBE_START_ARGS:-}
# `start` keeps the nodes of an existing cluster, whatever --nodes says.
if [ "$dry_run" -eq 0 ]; then
  nodes=$("${kubectl_cmd[@]}" get nodes -o name)
  for node in minikube minikube-m02 minikube-m03; do
    grep -qx "node/$node" <<< "$nodes" || {
      echo "minikube-up: the cluster has no node $node (an older profile?): 'minikube node add' or 'minikube delete' first" >&2
      exit 1
    }
  done
fi
# --all: the backends run on every node, and each node's runtime needs the image locally.
run timeout 1800 minikube -p "$profile" image build --all -t "$image" .
if [ "$scaling" = keda ]; then  # the ScaledObject needs KEDA's CRDs first
  run helm repo add --force-update kedacore https://kedacore.github.io/charts
  run helm upgrade --install keda kedacore/keda --namespace keda --create-namespace --wait --timeout 10m
fi
k apply -k "$dir"
if [ "$scaling" = prometheus-adapter ]; then  # after the overlay: the adapter mounts its rules ConfigMap
  run helm repo add --force-update prometheus-community https://prometheus-community.github.io/helm-charts
  run helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter --namespace "$namespace" \
    -f "$dir/helm-values.yaml" --wait --timeout 10m
fi

# Every Deployment of the overlay, from the cluster (or, in a dry run, from the rendered manifests).
if [ "$dry_run" -eq 1 ]; then
  deployments=$(node tools/deploy-check/render.mjs "$dir" |
    awk '/^kind:/ { kind = $2 } /^  name:/ && kind == "Deployment" { print "deployment/" $2; kind = "" }')
else
  deployments=$("${kubectl_cmd[@]}" -n "$namespace" get deployments -o name)
fi
for deployment in $deployments; do
  k -n "$namespace" rollout status "$deployment" --timeout=300s
done

echo
echo "Sluice (clients), Prometheus when deployed:"
services=(sluice)
[ "$overlay" = plain-prometheus ] && services+=(prometheus)  # also in every deploy/scaling overlay
for service in "${services[@]}"; do
  run timeout 60 minikube -p "$profile" service "$service" -n "$namespace" --url
done
answers="backend=web-<node> node=<node>"
if [ -n "$scaling" ]; then answers="backend=web-pool node=<node>, after 20 ms"; fi
cat << EOF

Try:  url=\$(minikube -p $profile service sluice -n $namespace --url)
      for i in 1 2 3 4 5 6; do curl -s "\$url/"; done     # $answers
      ${kubectl_cmd[*]} -n $namespace logs deployment/sluice    # JSON logs, one access line per connection
EOF
if [ -n "$scaling" ]; then
  hpa=web-pool
  [ "$scaling" = keda ] && hpa=keda-hpa-web-pool
  echo "      ${kubectl_cmd[*]} -n $namespace get hpa $hpa --watch   # web-pool's replicas follow the gauge"
  echo "      build/tools/sluice-loadgen --target \${url#http://} --rate 200 --duration 5m   # load: about 6 pods"
fi
