"""The kubernetes backend: ``KubeCluster`` drives a real cluster (kind/minikube + Istio).

Modules: ``client`` (kubeconfig, probe, typed entry points into the client's untyped
parts), ``resources`` (manifest -> API request), ``objects`` (safe reads of the client's
models), ``rollout`` (kubectl's rollout status), ``eventmap`` (Kubernetes happenings ->
EventKind), ``watches`` (list+watch threads feeding the shared ``EventHub``, bookmarks,
410 recovery), ``gateway`` (where load goes), ``weights``
(make-before-break VirtualService patch), ``images`` (build + kind/minikube load, also
``python -m lab_app.cluster.kube.images``), ``proxy`` (istioctl proxy-config / Envoy
admin), ``pods`` (PodInfo), ``cluster`` (KubeCluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab_app.cluster.kube.cluster import KubeCluster

__all__ = ["KubeCluster"]


def __getattr__(name: str) -> Any:
    # lazy, so `python -m lab_app.cluster.kube.images` does not import itself twice
    if name == "KubeCluster":
        from lab_app.cluster.kube.cluster import KubeCluster

        return KubeCluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
