"""``set_weights`` on the API server: read the VirtualService and DestinationRules, patch.

The rule (``weights``' validation, the whole split, make before break) is the shared pure
``lab_app.manifests.routing.reweight`` behind ``weights.weights_patch``; this module is the
blocking I/O around it and returns what the ``WeightsChanged`` event reports: the weights
given and the shares they give (``virtualservice_shares`` of the new VirtualService), the
same data as the embedded backend's event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import KubeClients, api_error, json_object
from lab_app.cluster.kube.resources import MERGE_PATCH, type_for_kind
from lab_app.cluster.kube.weights import weights_patch
from lab_app.errors import LabError, NotFoundError
from lab_app.manifests.routing import virtualservice_shares


def read_virtualservice(clients: KubeClients, namespace: str, name: str) -> dict[str, Any]:
    """The VirtualService as JSON; ``NotFoundError`` when it (or Istio) is not there."""
    vs_type = type_for_kind("VirtualService")
    try:
        return json_object(
            clients.custom.get_namespaced_custom_object(
                vs_type.group,
                vs_type.version,
                namespace,
                vs_type.plural,
                name,
                _request_timeout=10,
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            raise NotFoundError(
                f"virtualservice/{name} not found in namespace {namespace!r} "
                "(or Istio is not installed)"
            ) from None
        raise api_error(exc, f"reading virtualservice/{name}") from None


def list_destinationrules(clients: KubeClients, namespace: str) -> list[dict[str, Any]]:
    dr_type = type_for_kind("DestinationRule")
    try:
        listing = json_object(
            clients.custom.list_namespaced_custom_object(
                dr_type.group, dr_type.version, namespace, dr_type.plural, _request_timeout=10
            )
        )
    except ApiException as exc:
        raise api_error(exc, "listing destinationrules") from None
    return [dict(item) for item in listing.get("items") or []]


def set_weights(
    clients: KubeClients, namespace: str, virtualservice: str, weights: Mapping[str, int]
) -> dict[str, Any]:
    """Patch ``virtualservice`` to ``weights``; returns the event data (weights, shares).

    The patch carries the resourceVersion read, so a concurrent edit is a 409 and a
    ``LabError`` asking to call again, not a silent overwrite.
    """
    current = read_virtualservice(clients, namespace, virtualservice)
    rules = list_destinationrules(clients, namespace)
    patch = weights_patch(current, rules, weights, namespace)
    vs_type = type_for_kind("VirtualService")
    try:
        clients.custom.patch_namespaced_custom_object(
            vs_type.group,
            vs_type.version,
            namespace,
            vs_type.plural,
            virtualservice,
            patch,
            field_manager="zdlab",
            _content_type=MERGE_PATCH,
            _request_timeout=30,
        )
    except ApiException as exc:
        if exc.status == 409:
            raise LabError(
                f"virtualservice/{virtualservice} was changed by someone else while "
                "the weights were computed; call set_weights again"
            ) from None
        if exc.status == 404:
            raise NotFoundError(
                f"virtualservice/{virtualservice} not found in namespace {namespace!r}"
            ) from None
        raise api_error(exc, f"patching virtualservice/{virtualservice}") from None
    new = {**current, "spec": {**(current.get("spec") or {}), "http": patch["spec"]["http"]}}
    return {"weights": dict(weights), "shares": virtualservice_shares(new)}
