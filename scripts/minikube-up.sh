#!/usr/bin/env bash
# Starts a 4-node Minikube, builds the Sluice image once and loads it into every node, deploys
# Sluice, its three node-pinned backends and Prometheus (deploy/overlays/OVERLAY) with that image,
# waits for the rollout and prints `kubectl port-forward` commands to reach them. The image's tag
# comes from the source tree's content (scripts/sluice-image.sh): after a change, a rerun builds a
# new image and the Deployments roll to it; without a change it rebuilds and restarts nothing.
# Nodes minikube, minikube-m02 and minikube-m03 each run one backend; minikube-m04 is left for
# Sluice in the experiment (deploy/experiment). Needs minikube and a driver (e.g. Docker); docker
# on the host builds the image when it can reach a daemon, otherwise `minikube image build` on the
# first node (each only when the tag is not there yet); kubectl is optional (`minikube kubectl --`).
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

# The profile names the nodes (minikube, minikube-m02, ...), and config/minikube.yaml, the
# backends' nodeSelectors and deploy/experiment's Sluice pin to exactly those names.
profile=minikube
namespace=sluice
nodes=(minikube minikube-m02 minikube-m03 minikube-m04)
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
run timeout 900 minikube start -p "$profile" --nodes ${#nodes[@]} ${MINIKUBE_START_ARGS:-}
# `start` keeps the nodes of an existing cluster, whatever --nodes says.
if [ "$dry_run" -eq 0 ]; then
  present=$("${kubectl_cmd[@]}" get nodes -o name)
  for node in "${nodes[@]}"; do
    grep -qx "node/$node" <<< "$present" || {
      echo "minikube-up: the cluster has no node $node (an older profile?): 'minikube node add' or 'minikube delete' first" >&2
      exit 1
    }
  done
fi
# Built once, loaded into every node (each node's runtime needs the image: nothing pulls it).
image=$(bash scripts/sluice-image.sh image)
work=$(mktemp -d -t sluice-minikube-up.XXXXXX)
trap 'rm -rf "$work"' EXIT
if timeout 20 docker info > /dev/null 2>&1; then
  if [ "$dry_run" -eq 1 ] || ! docker image inspect "$image" > /dev/null 2>&1; then
    run timeout 1800 docker build -t "$image" .
  fi
  run timeout 900 minikube -p "$profile" image load "$image"
else  # no Docker daemon here (another driver): build on the first node, copy to the others
  # `image ls` prints it with its registry (docker.io/library/sluice:...), or as given.
  if [ "$dry_run" -eq 1 ] || ! minikube -p "$profile" image ls | grep -q "[/]$image$\|^$image$"; then
    run timeout 1800 minikube -p "$profile" image build -t "$image" .
  fi
  run timeout 900 minikube -p "$profile" image save "$image" "$work/sluice-image.tar"
  run timeout 900 minikube -p "$profile" image load "$work/sluice-image.tar"
fi
# The overlay with that image (kustomize images:): a new tag changes the pod templates, so the
# apply rolls the Deployments (rollout status below waits for it); the same tag changes nothing.
printf '+ bash scripts/sluice-image.sh kustomization %q %q\n' "$dir" "$work/deploy"
bash scripts/sluice-image.sh kustomization "$dir" "$work/deploy"
if [ "$dry_run" -eq 1 ]; then  # the directory goes with this script's exit: show what it holds
  echo "  (a temporary directory, removed on exit; its kustomization.yaml:)"
  sed 's/^/  | /' "$work/deploy/kustomization.yaml"
fi
if [ "$scaling" = keda ]; then  # the ScaledObject needs KEDA's CRDs first
  run helm repo add --force-update kedacore https://kedacore.github.io/charts
  run helm upgrade --install keda kedacore/keda --namespace keda --create-namespace --wait --timeout 10m
fi
k apply -k "$work/deploy"
if [ "$scaling" = prometheus-adapter ]; then  # after the overlay: the adapter mounts its rules ConfigMap
  run helm repo add --force-update prometheus-community https://prometheus-community.github.io/helm-charts
  run helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter --namespace "$namespace" \
    -f "$dir/helm-values.yaml" --wait --timeout 10m
fi

# Every Deployment of the overlay, from the cluster (or, in a dry run, from the rendered manifests).
if [ "$dry_run" -eq 1 ]; then
  deployments=$(node tools/deploy-check/render.mjs "$work/deploy" |
    awk '/^kind:/ { kind = $2 } /^  name:/ && kind == "Deployment" { print "deployment/" $2; kind = "" }')
else
  deployments=$("${kubectl_cmd[@]}" -n "$namespace" get deployments -o name)
fi
for deployment in $deployments; do
  k -n "$namespace" rollout status "$deployment" --timeout=300s
done

# `kubectl port-forward` works with every driver (with the Docker driver on macOS or Windows a
# NodePort cannot be reached from the host, and `minikube service` holds a terminal open for it).
kubectl_line=${kubectl_cmd[*]}
echo
echo "Reach them with port-forwards, each in a terminal of its own (or with &):"
echo "  $kubectl_line -n $namespace port-forward service/sluice 8080:8080         # clients"
echo "  $kubectl_line -n $namespace port-forward service/sluice-admin 9100:9100   # /metrics, /backends"
if [ "$overlay" = plain-prometheus ]; then  # also in every deploy/scaling overlay
  echo "  $kubectl_line -n $namespace port-forward service/prometheus 9090:9090     # Prometheus"
fi
answers="backend=web-<node> node=<node>"
if [ -n "$scaling" ]; then answers="backend=web-pool node=<node>, after 20 ms"; fi
cat << EOF

Try:  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done     # $answers
      curl -s http://127.0.0.1:9100/backends
      $kubectl_line -n $namespace logs deployment/sluice    # JSON logs, one access line per connection
EOF
if [ -n "$scaling" ]; then
  hpa=web-pool
  [ "$scaling" = keda ] && hpa=keda-hpa-web-pool
  echo "      $kubectl_line -n $namespace get hpa $hpa --watch   # web-pool's replicas follow the gauge"
  echo "      build/tools/sluice-loadgen --target 127.0.0.1:8080 --rate 200 --duration 5m   # load: about 6 pods"
fi
