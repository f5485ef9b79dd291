#!/usr/bin/env bash
# Delete what scripts/cluster-up.sh created: the kind cluster "zdlab" (or the minikube
# profile with --minikube) with everything in it (Gateway API CRDs, Istio, the zdlab
# namespace, the loaded images) and its kubeconfig context, then the zdlab/demo:v1..v3
# images it built in docker/podman (--keep-images leaves them).
# Usage: scripts/cluster-down.sh [--minikube] [--keep-images]
set -euo pipefail

NAME="${ZDLAB_CLUSTER:-zdlab}"
FLAVOUR=kind
REMOVE_IMAGES=1
for arg in "$@"; do
  case "$arg" in
    --minikube) FLAVOUR=minikube ;;
    --keep-images) REMOVE_IMAGES=0 ;;
    -h | --help)
      sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "cluster-down: unknown option $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

ENGINE=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null 2>&1; then
    ENGINE="$candidate"
    break
  fi
done

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
