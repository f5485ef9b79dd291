"""A Kubernetes pod as the lab's ``PodInfo`` (what ``kubectl get pods`` would show)."""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client as k8s

from lab_app.cluster.base import PodInfo
from lab_app.cluster.kube.objects import (
    POD_TEMPLATE_HASH,
    SIDECAR,
    app_container,
    has_sidecar,
    last_state_reason,
    meta,
    name_of,
    pod_ready,
)


def label_selector(selector: Mapping[str, str] | None) -> str | None:
    if not selector:
        return None
    return ",".join(f"{key}={value}" for key, value in selector.items())


def deployment_of(pod: k8s.V1Pod) -> str:
    """The owning Deployment: the ReplicaSet owner's name minus ``-<pod-template-hash>``."""
    labels = meta(pod).labels or {}
    for owner in meta(pod).owner_references or []:
        if owner.kind == "ReplicaSet":
            suffix = labels.get(POD_TEMPLATE_HASH)
            if suffix and owner.name.endswith(f"-{suffix}"):
                return owner.name[: -len(suffix) - 1]
            return owner.name.rsplit("-", 1)[0]
    return ""


def pod_info(pod: k8s.V1Pod) -> PodInfo:
    status = pod.status or k8s.V1PodStatus()
    app = app_container(pod)
    phase = status.phase or "Pending"
    if meta(pod).deletion_timestamp is not None:
        phase = "Terminating"  # as kubectl shows it
    statuses = list(status.container_statuses or [])
    restarts = sum(s.restart_count or 0 for s in statuses if s.name != SIDECAR)
    port = 0
    if app is not None:
        for container_port in app.ports or []:
            port = container_port.container_port
            break
    containers = {
        s.name: {
            "ready": bool(s.ready),
            "restarts": s.restart_count or 0,
            "state": next(
                (k for k in ("running", "waiting", "terminated") if getattr(s.state, k, None)),
                "unknown",
            )
            if s.state
            else "unknown",
            "image": s.image,
        }
        for s in statuses
    }
    created = meta(pod).creation_timestamp
    return PodInfo(
        name=name_of(pod),
        labels=dict(meta(pod).labels or {}),
        phase=phase,
        ready=pod_ready(pod),
        restarts=restarts,
        image=(app.image or "") if app is not None else "",
        deployment=deployment_of(pod),
        ip=status.pod_ip or "",
        port=port,
        pid=None,
        sidecar=has_sidecar(pod),
        last_state=last_state_reason(pod),
        extra={
            "node": pod.spec.node_name if pod.spec else None,
            "containers": containers,
            "created": created.timestamp() if created else None,
        },
    )
