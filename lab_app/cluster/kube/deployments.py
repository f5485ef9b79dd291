"""Deployments on the API server: ``set_image``, ``scale`` and ``deployment_status``.

What ``kubectl set image``, ``kubectl scale`` and ``kubectl get deployment`` do, as blocking
calls ``KubeCluster`` runs in a worker thread. A Deployment that does not exist is a
``NotFoundError`` naming it and the namespace, as on the embedded backend; a bad argument
is a ``ConfigError`` raised before any request is sent.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import KubeClients, api_error
from lab_app.cluster.kube.objects import app_container, meta
from lab_app.cluster.kube.ops import execute
from lab_app.cluster.kube.resources import (
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    patch_request,
    type_for_kind,
)
from lab_app.cluster.kube.rollout import ProgressDeadlineExceededError, rollout_status
from lab_app.errors import ConfigError, NotFoundError

REVISION = "deployment.kubernetes.io/revision"


def not_found(deployment: str, namespace: str) -> NotFoundError:
    return NotFoundError(f"deployment/{deployment} not found in namespace {namespace!r}")


def read(clients: KubeClients, namespace: str, name: str, timeout: float = 10) -> k8s.V1Deployment:
    """The Deployment; ``NotFoundError`` when there is none."""
    try:
        return clients.apps.read_namespaced_deployment(name, namespace, _request_timeout=timeout)
    except ApiException as exc:
        if exc.status == 404:
            raise not_found(name, namespace) from None
        raise api_error(exc, f"reading deployment/{name}") from None


def check_image(image: str) -> None:
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise ConfigError(f"image {image!r} is not an image reference")


def check_replicas(replicas: object) -> int:
    """``replicas`` as given when it is an int >= 0 (a bool is not); ``ConfigError`` else."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ConfigError(f"replicas must be an integer >= 0, not {replicas!r}")
    return replicas


def set_image(
    clients: KubeClients, namespace: str, deployment: str, image: str, container: str | None
) -> None:
    """A strategic-merge patch of one container's image (the app container by default)."""
    current = read(clients, namespace, deployment)
    template = current.spec.template if current.spec else None
    spec = (template.spec if template else None) or k8s.V1PodSpec(containers=[])
    names = [c.name for c in spec.containers or []]
    chosen = container
    if chosen is None:
        app = app_container(k8s.V1Pod(spec=spec))
        chosen = app.name if app else None
    if chosen not in names:
        raise NotFoundError(
            f"deployment/{deployment} has no container {chosen!r} (containers: {', '.join(names)})"
        )
    body = {"spec": {"template": {"spec": {"containers": [{"name": chosen, "image": image}]}}}}
    execute(
        clients,
        patch_request(
            type_for_kind("Deployment"), deployment, namespace, body, STRATEGIC_MERGE_PATCH
        ),
        f"set image of deployment/{deployment}",
    )


def scale(clients: KubeClients, namespace: str, deployment: str, replicas: int) -> None:
    """Patch the ``scale`` subresource, as ``kubectl scale`` does."""
    try:
        clients.apps.patch_namespaced_deployment_scale(
            deployment,
            namespace,
            {"spec": {"replicas": replicas}},
            field_manager="zdlab",
            _content_type=MERGE_PATCH,
            _request_timeout=30,
        )
    except ApiException as exc:
        if exc.status == 404:
            raise not_found(deployment, namespace) from None
        raise api_error(exc, f"scaling deployment/{deployment}") from None


def status(clients: KubeClients, namespace: str, deployment: str) -> dict[str, Any]:
    """The embedded backend's ``deployment_status`` keys, read from the Deployment's status
    and its current ReplicaSet (the one at the Deployment's revision):

    ``replicas`` (desired), ``current`` (pods of every ReplicaSet), ``updated``, ``ready``,
    ``available``, ``updated_available`` (available pods of the new template),
    ``terminating`` (0 where the server does not count them), ``revision``, ``complete``
    (what ``kubectl rollout status`` would say)."""
    dep = read(clients, namespace, deployment, timeout=5)
    st = dep.status or k8s.V1DeploymentStatus()
    revision = int((meta(dep).annotations or {}).get(REVISION) or 0)
    try:
        complete = rollout_status(dep).done
    except ProgressDeadlineExceededError:
        complete = False
    return {
        "replicas": dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1,
        "current": st.replicas or 0,
        "updated": st.updated_replicas or 0,
        "ready": st.ready_replicas or 0,
        "available": st.available_replicas or 0,
        "updated_available": _new_replicaset_available(clients, namespace, dep, revision),
        "terminating": st.terminating_replicas or 0,
        "revision": revision,
        "complete": complete,
    }


def _new_replicaset_available(
    clients: KubeClients, namespace: str, dep: k8s.V1Deployment, revision: int
) -> int:
    """Available pods of the ReplicaSet at ``revision`` owned by ``dep`` (0 if none)."""
    selector = dep.spec.selector if dep.spec else None
    labels = (selector.match_labels if selector else None) or {}
    try:
        listing = clients.apps.list_namespaced_replica_set(
            namespace,
            label_selector=",".join(f"{k}={v}" for k, v in labels.items()) or None,
            _request_timeout=5,
        )
    except ApiException as exc:
        raise api_error(exc, f"listing the replicasets of deployment/{meta(dep).name}") from None
    uid = meta(dep).uid
    for rs in listing.items or []:
        owners = meta(rs).owner_references or []
        if uid and not any(o.uid == uid for o in owners):
            continue
        if int((meta(rs).annotations or {}).get(REVISION) or 0) == revision and revision:
            return (rs.status.available_replicas if rs.status else None) or 0
    return 0
