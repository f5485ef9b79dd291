#!/usr/bin/env bash
# Delete what scripts/cluster-up.sh created: the kind cluster "zdlab" (or the minikube
# profile with --minikube) with everything in it (Gateway API CRDs, Istio, the zdlab
# namespace, the loaded images) and its kubeconfig context, then the zdlab/demo:v1..v3
# images it built in docker/podman (--keep-images leaves them).
# Usage: scripts/cluster-down.sh [--minikube] [--keep-images]
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="${ZDLAB_CLUSTER:-zdlab}"
parse_args cluster-down 6 --keep-images "$@"
REMOVE_IMAGES=$((1 - FLAG_GIVEN)) # --keep-images
find_engine

if [[ $FLAVOUR == minikube ]]; then
  command -v minikube >/dev/null 2>&1 || {
    echo "cluster-down: minikube is not on PATH" >&2
    exit 1
  }
  echo "==> deleting minikube profile $NAME"
  minikube delete -p "$NAME"
else
  command -v kind >/dev/null 2>&1 || {
    echo "cluster-down: kind is not on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" >&2
    exit 1
  }
  if [[ $ENGINE == podman ]]; then
    export KIND_EXPERIMENTAL_PROVIDER=podman
  fi
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    echo "==> deleting kind cluster $NAME (and its kubeconfig context kind-$NAME)"
    kind delete cluster --name "$NAME"
  else
    echo "no kind cluster named $NAME: nothing to delete"
  fi
fi

if [[ $REMOVE_IMAGES == 1 && -n $ENGINE ]]; then
  for version in v1 v2 v3; do
    image="zdlab/demo:$version"
    if "$ENGINE" image inspect "$image" >/dev/null 2>&1; then
      echo "==> removing image $image from $ENGINE"
      "$ENGINE" image rm "$image" >/dev/null
    fi
  done
fi
