"""Applying and deleting manifests on the API server: the blocking half of ``apply``/``delete``.

``resources`` says *which* request serves a manifest; this module sends them, in
dependency order, and turns the server's answers into the lab's errors. Everything here
blocks (the ``kubernetes`` client does), so ``KubeCluster`` runs it in a worker thread.
A ``Namespace`` manifest (``manifests/namespace.yaml``) is applied as the lab's own
namespace, whatever name it carries (see ``namespace``).
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from lab_app.cluster.base import ManifestSource
from lab_app.cluster.kube.client import KubeClients, api_error
from lab_app.cluster.kube.namespace import as_lab_namespace
from lab_app.cluster.kube.resources import (
    APPLY_ORDER,
    ApiRequest,
    ResourceType,
    apply_request,
    delete_request,
    object_name,
    parse_ref,
    ref,
    resource_type,
)
from lab_app.errors import LabError


def load_documents(source: Any) -> list[tuple[dict[str, Any], str]]:
    """Validated objects with their origin, through the lab's manifest loader."""
    from lab_app.manifests import load_documents as load

    return [(m.obj, f"{m.source}#{m.index}") for m in load(source)]


def call(clients: KubeClients, request: ApiRequest) -> Any:
    """Send one described request (``ApiRequest``) with a 30 s deadline."""
    api = getattr(clients, request.api)
    return getattr(api, request.method)(**request.kwargs, _request_timeout=30)


def execute(clients: KubeClients, request: ApiRequest, what: str) -> Any:
    """``call``, with a failure as a one-line ``LabError`` saying ``what`` was attempted.

    A 404 from an Istio kind most likely means Istio (its CRDs) is not installed."""
    try:
        return call(clients, request)
    except ApiException as exc:
        if exc.status == 404 and request.api == "custom":
            group = request.kwargs.get("group", "")
            raise LabError(
                f"{what}: the API server does not serve {request.kwargs.get('plural')}."
                f"{group} (is Istio installed? docs/real-cluster.md) or it does not exist"
            ) from None
        raise api_error(exc, what) from None


def sorted_documents(
    source: ManifestSource, namespace: str, reverse: bool = False
) -> list[tuple[dict[str, Any], ResourceType, str]]:
    """The manifests of ``source`` in apply order (``reverse``: delete order), each with
    its resource type and origin; a Namespace becomes the lab's namespace."""
    items = []
    for obj, origin in load_documents(source):
        obj = as_lab_namespace(obj, namespace)
        items.append((obj, resource_type(obj, origin), origin))
    items.sort(key=lambda item: APPLY_ORDER.get(item[1].kind, 99), reverse=reverse)
    return items


def apply_all(
    clients: KubeClients, namespace: str, source: ManifestSource, force: bool
) -> list[str]:
    """Server-side apply every object of ``source``; returns their ``kind/name``."""
    applied = []
    for obj, rt, origin in sorted_documents(source, namespace):
        name = object_name(obj, origin)
        execute(clients, apply_request(obj, namespace, origin, force=force), f"apply {origin}")
        applied.append(ref(rt, name))
    return applied


def delete_all(clients: KubeClients, namespace: str, source: ManifestSource | str) -> list[str]:
    """Delete by manifest or ``kind/name``; an object already gone is left out of the
    result without an error (``kubectl delete --ignore-not-found``)."""
    parsed = parse_ref(source) if isinstance(source, str) else None
    targets: list[tuple[ResourceType, str, str]] = []
    if parsed is not None:
        targets.append((parsed[0], parsed[1], namespace))
    else:
        for obj, rt, origin in sorted_documents(source, namespace, reverse=True):
            obj_namespace = (obj.get("metadata") or {}).get("namespace") or namespace
            targets.append((rt, object_name(obj, origin), obj_namespace))
    deleted = []
    for rt, name, obj_namespace in targets:
        try:
            call(clients, delete_request(rt, name, obj_namespace))
        except ApiException as exc:
            if exc.status == 404:  # already gone (or the kind is not served)
                continue
            raise api_error(exc, f"delete {ref(rt, name)}") from None
        deleted.append(ref(rt, name))
    return deleted
