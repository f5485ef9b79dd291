#!/usr/bin/env bash
# Create the local cluster the kubernetes backend runs on, at pinned versions: kind cluster
# "zdlab" (or a minikube profile with --minikube), the Gateway API CRDs (standard channel),
# Istio with its CNI node agent from the overlay scripts/istio-operator.yaml (ingress
# gateway Service NodePort 31380, the port manifests/kind-cluster.yaml maps to the host),
# the zdlab namespace, and the demo images v1, v2, v3 built and loaded into the node.
# Safe to run again: steps already done are skipped or re-applied.
# Usage: scripts/cluster-up.sh [--minikube] [--no-images]
# Versions (environment, defaults below): KIND_VERSION KIND_NODE_IMAGE KUBERNETES_VERSION
#   ISTIO_VERSION GATEWAY_API_VERSION. Step by step: docs/real-cluster.md
set -euo pipefail

# --- pinned versions (override through the environment; docs/real-cluster.md says where
# --- each one was checked) -------------------------------------------------------------
# kind v0.30.0's default node image, Kubernetes 1.34.0 (kind: pkg/apis/config/defaults/image.go
# at tag v0.30.0). A node image is supported only with the kind release that built it.
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a}"
# the Kubernetes version of the node image's tag, unless given
NODE_TAG="${KIND_NODE_IMAGE##*:v}"
NODE_TAG="${NODE_TAG%%@*}"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v${NODE_TAG}}"
# Istio 1.28's latest patch in istio/istio's tags; 1.24 is the minimum (docs/real-cluster.md)
ISTIO_VERSION="${ISTIO_VERSION:-1.28.10}"
ISTIO_MINIMUM_MINOR=24
# Gateway API CRDs, standard channel: the version Istio 1.28.10 builds and tests against
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.4.1}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${ZDLAB_CLUSTER:-zdlab}"
KIND_CONFIG="$REPO/manifests/kind-cluster.yaml"
ISTIO_OVERLAY="$REPO/scripts/istio-operator.yaml"
GATEWAY_API_URL="https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
VERSIONS=(v1 v2 v3)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$REPO/scripts/lib.sh"
parse_args cluster-up 10 --no-images "$@"
BUILD_IMAGES=$((1 - FLAG_GIVEN)) # --no-images

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'cluster-up: %s\n' "$*" >&2
  exit 1
}
need() { # need TOOL "how to get it"
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not on PATH. $2"
}
minor_of() { # minor_of 1.28.10 -> 28, v1.34.0 -> 34, "34+" -> 34
  local v="${1#v}"
  [[ $v == *.* ]] && v="${v#*.}"
  v="${v%%.*}"
  printf '%s' "${v//[!0-9]/}"
}

step "versions (override with the environment variables named)"
if [[ $FLAVOUR == kind ]]; then
  echo "KIND_VERSION=$KIND_VERSION"
  echo "KIND_NODE_IMAGE=$KIND_NODE_IMAGE"
fi
echo "KUBERNETES_VERSION=$KUBERNETES_VERSION"
echo "ISTIO_VERSION=$ISTIO_VERSION"
echo "GATEWAY_API_VERSION=$GATEWAY_API_VERSION"
K8S_MINOR="$(minor_of "$KUBERNETES_VERSION")"
ISTIO_MINOR="$(minor_of "$ISTIO_VERSION")"
[[ -n $K8S_MINOR && -n $ISTIO_MINOR ]] || fail "cannot read a minor version from KUBERNETES_VERSION=$KUBERNETES_VERSION / ISTIO_VERSION=$ISTIO_VERSION"
((ISTIO_MINOR >= ISTIO_MINIMUM_MINOR)) || fail "ISTIO_VERSION=$ISTIO_VERSION: the lab needs Istio 1.$ISTIO_MINIMUM_MINOR or newer (default retries exclude 503 since 1.24; docs/real-cluster.md)"

step "checking tools"
if [[ $FLAVOUR == kind ]]; then
  need kind "Install kind $KIND_VERSION: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  got_kind="$(kind version 2>/dev/null | awk '{print $2}')"
  if [[ $got_kind != "$KIND_VERSION" ]]; then
    echo "warning: kind is ${got_kind:-unknown}, this script expects $KIND_VERSION: $KIND_NODE_IMAGE" >&2
    echo "         was built for kind $KIND_VERSION; pick the node image that kind's release notes list for your kind (KIND_NODE_IMAGE=...)" >&2
  fi
else
  need minikube "Install minikube: https://minikube.sigs.k8s.io/docs/start/"
fi
need kubectl "Install kubectl 1.$((K8S_MINOR - 1))-1.$((K8S_MINOR + 1)): https://kubernetes.io/docs/tasks/tools/"
need istioctl "Install istioctl $ISTIO_VERSION: curl -L https://istio.io/downloadIstio | ISTIO_VERSION=$ISTIO_VERSION sh - (then add istio-$ISTIO_VERSION/bin to PATH)"
find_engine
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

# istioctl's own version must be the pinned one: it installs the control plane of its version.
got_istioctl="$(istioctl version --remote=false --short 2>/dev/null | head -n 1 | sed 's/^[^0-9]*//')"
[[ $got_istioctl == "$ISTIO_VERSION" ]] || fail "istioctl is ${got_istioctl:-unknown}, expected $ISTIO_VERSION: put istio-$ISTIO_VERSION/bin first on PATH, or set ISTIO_VERSION=${got_istioctl:-...} (1.$ISTIO_MINIMUM_MINOR+)"
echo "kind/minikube, kubectl, istioctl $got_istioctl, $ENGINE and $PY are here"

# The gateway's NodePort is the first extraPortMappings entry of kind-cluster.yaml; the
# Istio overlay must give the ingress gateway's http2 port that nodePort.
read -r NODE_PORT HOST_ADDRESS HOST_PORT OVERLAY_PORT < <(cd "$REPO" && "$PY" -c '
import sys, yaml
from lab_app.cluster.kube.gateway import kind_port_mappings
m = kind_port_mappings()[0]
spec = yaml.safe_load(open(sys.argv[1]))["spec"]
gw = next(g for g in spec["components"]["ingressGateways"] if g["name"] == "istio-ingressgateway")
port = next(p for p in gw["k8s"]["service"]["ports"] if p["name"] == "http2")
print(m.container_port, m.listen_address, m.host_port, port.get("nodePort", "unset"))' "$ISTIO_OVERLAY")
[[ $NODE_PORT == "$OVERLAY_PORT" ]] || fail "scripts/istio-operator.yaml gives the gateway's http2 port nodePort $OVERLAY_PORT but manifests/kind-cluster.yaml maps $NODE_PORT to the host: make them equal"

if [[ $FLAVOUR == kind ]]; then
  step "creating kind cluster $NAME ($KIND_NODE_IMAGE) from manifests/kind-cluster.yaml"
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    echo "kind cluster $NAME exists already (delete it with scripts/cluster-down.sh to change its version)"
  else
    kind create cluster --name "$NAME" --image "$KIND_NODE_IMAGE" --config "$KIND_CONFIG" --wait 120s
  fi
  CONTEXT="kind-$NAME"
else
  step "starting minikube profile $NAME (Kubernetes $KUBERNETES_VERSION)"
  minikube start -p "$NAME" --kubernetes-version="$KUBERNETES_VERSION" --cpus=2 --memory=6g
  CONTEXT="$NAME"
fi
kubectl config use-context "$CONTEXT" >/dev/null
KUBECTL=(kubectl --context "$CONTEXT")
echo "kubectl context: $CONTEXT"

step "checking the Kubernetes version"
versions_json="$("${KUBECTL[@]}" version --output=json 2>/dev/null)" || fail "kubectl version --output=json failed on context $CONTEXT: is the cluster up?"
read -r server_minor server_git client_minor < <(printf '%s' "$versions_json" | "$PY" -c '
import json, sys
v = json.load(sys.stdin)
s, c = v.get("serverVersion") or {}, v.get("clientVersion") or {}
print(s.get("minor", "?"), s.get("gitVersion", "?"), c.get("minor", "?"))')
server_minor="${server_minor//[!0-9]/}"
client_minor="${client_minor//[!0-9]/}"
[[ $server_minor == "$K8S_MINOR" ]] || fail "the cluster runs Kubernetes $server_git, expected 1.$K8S_MINOR ($KUBERNETES_VERSION): delete it (scripts/cluster-down.sh) and run this again, or set KUBERNETES_VERSION"
echo "server $server_git"
if [[ -n $client_minor ]] && ((client_minor < K8S_MINOR - 1 || client_minor > K8S_MINOR + 1)); then
  echo "warning: kubectl is 1.$client_minor, outside the supported skew of 1.$K8S_MINOR (one minor either way)" >&2
fi

step "installing the Gateway API CRDs $GATEWAY_API_VERSION (standard channel)"
"${KUBECTL[@]}" apply --server-side --force-conflicts -f "$GATEWAY_API_URL"
"${KUBECTL[@]}" wait --for=condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io

step "installing Istio $ISTIO_VERSION from scripts/istio-operator.yaml (demo profile, CNI, gateway NodePort $NODE_PORT)"
istioctl install --context "$CONTEXT" -f "$ISTIO_OVERLAY" -y
"${KUBECTL[@]}" -n istio-system rollout status deployment/istiod --timeout=300s
"${KUBECTL[@]}" -n istio-system rollout status daemonset/istio-cni-node --timeout=300s
"${KUBECTL[@]}" -n istio-system rollout status deployment/istio-ingressgateway --timeout=300s

step "checking what Istio installed"
pilot_image="$("${KUBECTL[@]}" -n istio-system get deployment istiod -o jsonpath='{.spec.template.spec.containers[0].image}')"
[[ ${pilot_image##*:} == "$ISTIO_VERSION" || ${pilot_image##*:} == "$ISTIO_VERSION"-* ]] || fail "istiod runs $pilot_image, expected Istio $ISTIO_VERSION: another Istio is installed; scripts/cluster-down.sh and start again"
got_port="$("${KUBECTL[@]}" -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="http2")].nodePort}')"
[[ $got_port == "$NODE_PORT" ]] || fail "the ingress gateway's http2 NodePort is ${got_port:-unset}, expected $NODE_PORT (scripts/istio-operator.yaml)"
istioctl version --context "$CONTEXT" || true
echo "istiod $pilot_image, gateway http2 NodePort $got_port"

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
echo "versions: Kubernetes $server_git, Istio $ISTIO_VERSION, Gateway API $GATEWAY_API_VERSION"
echo "gateway:  $GATEWAY"
echo "notebooks: ZDLAB_BACKEND=kubernetes make lab   (or BACKEND = \"kubernetes\" in a notebook)"
echo "end-to-end tests: make test-cluster            remove: scripts/cluster-down.sh"
