"""The kubernetes backend: ``KubeCluster`` drives a real cluster (kind/minikube + Istio).

Modules: ``cluster`` (``KubeCluster``, a thin facade over the rest), ``client``
(kubeconfig, probe, typed entry points into the client's untyped parts), ``namespace``
(the lab's namespace: created at connect, deleted at close), ``resources`` (manifest ->
API request), ``ops`` (apply/delete in dependency order), ``deployments`` (set_image,
scale, deployment_status), ``objects`` (safe reads of the client's models), ``pods``
(PodInfo, listing, logs), ``rollout`` (kubectl's rollout status, interruptible waits),
``eventmap`` (Kubernetes happenings -> EventKind), ``watches`` (list+watch threads feeding
the shared ``EventHub``, bookmarks, 410 recovery), ``gateway`` (where load goes),
``weights`` (the VirtualService merge patch of ``manifests.routing.reweight``),
``traffic`` (set_weights on the API server), ``settle`` (does the gateway's Envoy hold the
spec? pure), ``gatewaysync`` (config_settled and ConfigPushed, reading the gateway),
``images`` (build + kind/minikube load, also ``python -m lab_app.cluster.kube.images``),
``proxy`` (istioctl proxy-config / Envoy admin), ``reach`` (is a cluster usable?).
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
