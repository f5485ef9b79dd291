#!/usr/bin/env bash
# Create the local cluster the kubernetes backend runs on: kind cluster "zdlab" (or a
# minikube profile with --minikube), Istio (demo profile, with its CNI node agent because
# the zdlab namespace enforces the "restricted" Pod Security Standard), the ingress
# gateway's HTTP NodePort pinned to the one manifests/kind-cluster.yaml maps to the host,
# the zdlab namespace, and the demo images v1, v2, v3 built and loaded into the node.
# Safe to run again: steps already done are skipped or re-applied.
# Usage: scripts/cluster-up.sh [--minikube] [--no-images]
# Step by step and troubleshooting: docs/real-cluster.md
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${ZDLAB_CLUSTER:-zdlab}"
KIND_CONFIG="$REPO/manifests/kind-cluster.yaml"
VERSIONS=(v1 v2 v3)
FLAVOUR=kind
BUILD_IMAGES=1

for arg in "$@"; do
  case "$arg" in
    --minikube) FLAVOUR=minikube ;;
    --no-images) BUILD_IMAGES=0 ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "cluster-up: unknown option $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'cluster-up: %s\n' "$*" >&2
  exit 1
}

need() { # need TOOL "how to get it"
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not on PATH. $2"
}

step "checking tools"
if [[ $FLAVOUR == kind ]]; then
  need kind "Install kind 0.23+ (Kubernetes 1.30+ nodes): https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
else
  need minikube "Install minikube: https://minikube.sigs.k8s.io/docs/start/"
fi
need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
need istioctl "Install istioctl 1.22+: https://istio.io/latest/docs/setup/getting-started/#download (add istio-*/bin to PATH)"
ENGINE=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null 2>&1; then
    ENGINE="$candidate"
    break
  fi
done
[[ -n $ENGINE ]] || fail "neither docker nor podman is on PATH. Install Docker (https://docs.docker.com/engine/install/) or Podman (https://podman.io/docs/installation)"
"$ENGINE" info >/dev/null 2>&1 || fail "$ENGINE is installed but its engine does not answer ('$ENGINE info' fails): start it first"
if [[ $ENGINE == podman ]]; then
  export KIND_EXPERIMENTAL_PROVIDER=podman
fi

PY="${PYTHON:-$REPO/.venv/bin/python}"
if [[ ! -x $PY ]]; then
  PY="$(command -v python3 || true)"
fi
if [[ -z $PY ]] || ! (cd "$REPO" && "$PY" -c 'import lab_app, kubernetes, yaml') 2>/dev/null; then
  fail "the lab's Python environment is missing: run 'make install' first (or set PYTHON=...)"
fi
echo "kind/minikube, kubectl, istioctl, $ENGINE and $PY are here"

# The gateway's NodePort is the first extraPortMappings entry of kind-cluster.yaml.
read -r NODE_PORT HOST_ADDRESS HOST_PORT < <(cd "$REPO" && "$PY" -c '
from lab_app.cluster.kube.gateway import kind_port_mappings
m = kind_port_mappings()[0]
print(m.container_port, m.listen_address, m.host_port)')

if [[ $FLAVOUR == kind ]]; then
  step "creating kind cluster $NAME from manifests/kind-cluster.yaml"
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    echo "kind cluster $NAME exists already"
  else
    kind create cluster --name "$NAME" --config "$KIND_CONFIG" --wait 120s
  fi
  CONTEXT="kind-$NAME"
else
  step "starting minikube profile $NAME"
  minikube start -p "$NAME" --cpus=2 --memory=6g
  CONTEXT="$NAME"
fi
kubectl config use-context "$CONTEXT" >/dev/null
KUBECTL=(kubectl --context "$CONTEXT")
echo "kubectl context: $CONTEXT"

step "installing Istio (demo profile, CNI node agent)"
istioctl install --context "$CONTEXT" --set profile=demo --set components.cni.enabled=true -y
"${KUBECTL[@]}" -n istio-system rollout status deployment/istiod --timeout=300s
"${KUBECTL[@]}" -n istio-system rollout status deployment/istio-ingressgateway --timeout=300s

step "pinning the ingress gateway's http2 NodePort to $NODE_PORT"
# strategic merge patch: Service ports merge by their `port` (80 is http2). On kind this is
# the port manifests/kind-cluster.yaml publishes on $HOST_ADDRESS:$HOST_PORT.
"${KUBECTL[@]}" -n istio-system patch service istio-ingressgateway \
  -p "{\"spec\":{\"ports\":[{\"port\":80,\"nodePort\":$NODE_PORT}]}}"

step "creating namespace zdlab (Istio injection, Pod Security 'restricted')"
"${KUBECTL[@]}" apply -f "$REPO/manifests/namespace.yaml"

if [[ $BUILD_IMAGES == 1 ]]; then
  step "building and loading images ${VERSIONS[*]} with $ENGINE"
  if [[ $FLAVOUR == kind ]]; then
    (cd "$REPO" && "$PY" -m lab_app.cluster.kube.images "${VERSIONS[@]}" --kind "$NAME")
  else
    (cd "$REPO" && "$PY" -m lab_app.cluster.kube.images "${VERSIONS[@]}" --minikube "$NAME")
  fi
else
  step "skipping the images (--no-images)"
fi

if [[ $FLAVOUR == kind ]]; then
  GATEWAY="http://$HOST_ADDRESS:$HOST_PORT"
  [[ $HOST_ADDRESS == 0.0.0.0 ]] && GATEWAY="http://127.0.0.1:$HOST_PORT"
else
  GATEWAY="http://$(minikube ip -p "$NAME"):$NODE_PORT"
fi
step "ready"
echo "context:  $CONTEXT"
echo "gateway:  $GATEWAY"
echo "notebooks: ZDLAB_BACKEND=kubernetes make lab   (or BACKEND = \"kubernetes\" in a notebook)"
echo "end-to-end tests: make test-cluster            remove: scripts/cluster-down.sh"
