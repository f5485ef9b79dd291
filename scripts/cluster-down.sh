#!/usr/bin/env bash
# Delete the local cluster made by scripts/cluster-up.sh (kind cluster "zdlab", or the
# minikube profile with --minikube). Everything in it goes: Istio, the zdlab namespace,
# the loaded images. Usage: scripts/cluster-down.sh [--minikube]
set -euo pipefail

NAME="${ZDLAB_CLUSTER:-zdlab}"
FLAVOUR=kind
for arg in "$@"; do
  case "$arg" in
    --minikube) FLAVOUR=minikube ;;
    -h | --help)
      sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "cluster-down: unknown option $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

if [[ $FLAVOUR == minikube ]]; then
  command -v minikube >/dev/null 2>&1 || {
    echo "cluster-down: minikube is not on PATH" >&2
    exit 1
  }
  echo "==> deleting minikube profile $NAME"
  minikube delete -p "$NAME"
  exit 0
fi

command -v kind >/dev/null 2>&1 || {
  echo "cluster-down: kind is not on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" >&2
  exit 1
}
if ! command -v docker >/dev/null 2>&1 && command -v podman >/dev/null 2>&1; then
  export KIND_EXPERIMENTAL_PROVIDER=podman
fi
if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
  echo "==> deleting kind cluster $NAME"
  kind delete cluster --name "$NAME"
else
  echo "no kind cluster named $NAME: nothing to delete"
fi
