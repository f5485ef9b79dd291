"""Pods as ``kubectl get pods`` and ``kubectl logs`` show them: ``PodInfo`` and the app log.

``pod_info`` is pure (the event mapping uses it on watched pods too); ``list_pods`` and
``read_log`` are the blocking API calls behind ``KubeCluster.pods`` and ``.logs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.base import PodInfo
from lab_app.cluster.kube.client import KubeClients, api_error, status_message
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
from lab_app.errors import ConfigError, NotFoundError


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


def list_pods(
    clients: KubeClients, namespace: str, selector: Mapping[str, str] | None
) -> list[PodInfo]:
    """The namespace's pods (``kubectl get pods -l``), sorted by name."""
    try:
        listing = clients.core.list_namespaced_pod(
            namespace, label_selector=label_selector(selector), _request_timeout=15
        )
    except ApiException as exc:
        raise api_error(exc, f"listing pods in {namespace!r}") from None
    return sorted((pod_info(p) for p in listing.items or []), key=lambda p: p.name)


def read_log(
    clients: KubeClients, namespace: str, pod: str, tail: int | None, previous: bool
) -> str:
    """The app container's log (``kubectl logs [--previous] [--tail]``).

    ``NotFoundError`` for a missing pod; ``ConfigError`` for ``previous`` when the kubelet
    has no terminated container to read (400 "previous terminated container ... not
    found"), in the embedded backend's words.
    """
    name = pod.removeprefix("pod/")
    try:
        current = clients.core.read_namespaced_pod(name, namespace, _request_timeout=10)
        app = app_container(current)
        kwargs: dict[str, Any] = {"_request_timeout": 30}
        if app is not None and app.name != SIDECAR:
            kwargs["container"] = app.name
        if tail is not None:
            kwargs["tail_lines"] = int(tail)
        if previous:
            kwargs["previous"] = True
        return str(clients.core.read_namespaced_pod_log(name, namespace, **kwargs))
    except ApiException as exc:
        if exc.status == 404:
            raise NotFoundError(f"pod/{name} not found in namespace {namespace!r}") from None
        if (
            exc.status == 400
            and previous
            and "previous terminated container" in (status_message(exc))
        ):
            raise ConfigError(f"pod/{name} has no previous container (no restart yet)") from None
        raise api_error(exc, f"reading the log of pod/{name}") from None
