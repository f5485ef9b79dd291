"""Reading the ``kubernetes`` client's models safely: metadata, containers, readiness.

The client types almost every field as optional (``metadata: V1ObjectMeta | None``), and
a watch may deliver partial objects, so every reader goes through these helpers instead
of chaining attributes: a missing part reads as empty, never as an ``AttributeError`` in
a watch thread. Both the event mapping (``eventmap``) and ``PodInfo`` (``pods``) use them.
"""

from __future__ import annotations

from typing import Protocol

from kubernetes import client as k8s

SIDECAR = "istio-proxy"
POD_TEMPLATE_HASH = "pod-template-hash"


class HasMetadata(Protocol):
    @property
    def metadata(self) -> k8s.V1ObjectMeta | None: ...


def meta(obj: HasMetadata) -> k8s.V1ObjectMeta:
    """The object's metadata, an empty one when it has none."""
    return obj.metadata or k8s.V1ObjectMeta()


def name_of(obj: HasMetadata) -> str:
    """``metadata.name``, ``""`` when unset."""
    return str(meta(obj).name or "")


def app_container(pod: k8s.V1Pod) -> k8s.V1Container | None:
    """The pod's application container: the first one that is not Istio's sidecar."""
    containers = (pod.spec.containers if pod.spec else None) or []
    for container in containers:
        if container.name != SIDECAR:
            return container
    return containers[0] if containers else None


def has_sidecar(pod: k8s.V1Pod) -> bool:
    """An Envoy sidecar, classic (a container) or native (a restartable init container)."""
    spec = pod.spec
    if spec is None:
        return False
    names = [c.name for c in spec.containers or []]
    names += [c.name for c in spec.init_containers or [] if c.restart_policy == "Always"]
    return SIDECAR in names


def pod_ready(pod: k8s.V1Pod) -> bool:
    for condition in (pod.status.conditions if pod.status else None) or []:
        if condition.type == "Ready":
            return condition.status == "True"
    return False


def all_statuses(pod: k8s.V1Pod) -> list[k8s.V1ContainerStatus]:
    """The containers' statuses, a native sidecar's (an init container) included."""
    status = pod.status
    if status is None:
        return []
    statuses = list(status.container_statuses or [])
    statuses += [s for s in status.init_container_statuses or [] if s.name == SIDECAR]
    return statuses


def last_state_reason(pod: k8s.V1Pod) -> str:
    """Why the app container last stopped (``OOMKilled``, ``Error``...), or ``""``."""
    app = app_container(pod)
    for status in all_statuses(pod):
        if app is not None and status.name == app.name and status.last_state:
            term = status.last_state.terminated
            if term is not None:
                return term.reason or ("Error" if term.exit_code else "Completed")
    return ""
