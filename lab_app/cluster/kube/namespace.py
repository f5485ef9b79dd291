"""The lab's namespace on a real cluster: created at connect, removed at close.

Each notebook can run in a namespace of its own (``connect("kubernetes",
namespace="zdlab-05")``), so one lesson's leftovers never meet the next one. The namespace
carries the labels of ``manifests/namespace.yaml`` (Istio sidecar injection, Pod Security
``restricted``), whatever its name, and that manifest, when a notebook applies it, is
applied *as* the lab's namespace rather than creating a second namespace ``zdlab``.

A namespace the lab created is marked with ``OWNER_ANNOTATION``, written under its own
field manager (``zdlab-namespace``) so that re-applying ``manifests/namespace.yaml`` (as
manager ``zdlab``) does not drop it. ``close()`` deletes a namespace only when it carries
that mark: one a notebook left behind after a crash is cleaned up by the next run, while a
namespace someone made by hand (or ``scripts/cluster-up.sh``'s ``zdlab``) is never deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import KubeClients, api_error
from lab_app.cluster.kube.objects import meta
from lab_app.errors import LabError
from lab_app.paths import MANIFESTS_DIR

NAMESPACE_MANIFEST = MANIFESTS_DIR / "namespace.yaml"
INJECTION_LABEL = {"istio-injection": "enabled"}
# what the lab falls back to when manifests/namespace.yaml is not there
DEFAULT_LABELS = {
    **INJECTION_LABEL,
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
OWNER_ANNOTATION = "zdlab.dev/created-by"
OWNER_MANAGER = "zdlab-namespace"
APPLY_PATCH = "application/apply-patch+yaml"

Loader = Callable[[Any], list[tuple[dict[str, Any], str]]]


def manifest_labels(load: Loader) -> dict[str, str]:
    """The labels of ``manifests/namespace.yaml`` (``DEFAULT_LABELS`` without it)."""
    if NAMESPACE_MANIFEST.is_file():
        for obj, _ in load(NAMESPACE_MANIFEST):
            if obj.get("kind") == "Namespace":
                labels = (obj.get("metadata") or {}).get("labels")
                if labels:
                    return {str(k): str(v) for k, v in labels.items()}
    return dict(DEFAULT_LABELS)


def as_lab_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A Namespace manifest renamed to the lab's namespace (other kinds unchanged)."""
    if obj.get("kind") != "Namespace" or obj.get("apiVersion") != "v1":
        return obj
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "name": namespace}}


def ensure(clients: KubeClients, namespace: str, load: Loader, wait: float = 60.0) -> bool:
    """Create ``namespace`` if missing (labelled like the manifest); ``True`` when the lab
    owns it (created now, or by an earlier connect), so ``close()`` may delete it.

    A namespace still terminating from a previous close is waited for (up to ``wait``
    seconds), as nothing can be created in it meanwhile.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            current = clients.core.read_namespace(namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 403:  # may not read namespaces (namespaced RBAC): assume it exists
                return False
            if exc.status != 404:
                raise api_error(exc, f"reading namespace {namespace!r}") from None
            break
        phase = current.status.phase if current.status else None
        if phase != "Terminating":
            return (meta(current).annotations or {}).get(OWNER_ANNOTATION) == "connect"
        if time.monotonic() >= deadline:
            raise LabError(
                f"namespace {namespace!r} is still terminating after {wait:g} s; "
                "try again later or connect with another namespace"
            )
        time.sleep(0.5)
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": manifest_labels(load),
            "annotations": {OWNER_ANNOTATION: "connect"},
        },
    }
    try:
        clients.core.patch_namespace(
            namespace,
            body,
            field_manager=OWNER_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
            _request_timeout=30,
        )
    except ApiException as exc:
        raise api_error(exc, f"creating namespace/{namespace}") from None
    return True


def delete(clients: KubeClients, namespace: str) -> bool:
    """Delete the namespace (its objects go with it); ``False`` when it was already gone."""
    try:
        clients.core.delete_namespace(
            namespace, propagation_policy="Background", _request_timeout=30
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise api_error(exc, f"deleting namespace/{namespace}") from None
    return True
