"""Moving traffic between subsets by editing a VirtualService, make before break.

The rule itself is ``lab_app.manifests.routing.reweight``, the one pure function both
backends call: ``weights`` is the route's whole split, every named subset must already be
defined by its host's DestinationRule (else the gateway answers 503 NC for its share). This
module turns the result into what the API server gets: a JSON merge patch of ``spec.http``
that carries the VirtualService's resourceVersion, so a concurrent edit makes the patch fail
with 409 instead of being silently overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lab_app.manifests.routing import reweight, subsets_by_host, validate_weights

__all__ = ["validate_weights", "weights_patch"]


def weights_patch(
    virtualservice: Mapping[str, Any],
    destinationrules: Sequence[Mapping[str, Any]],
    weights: Mapping[str, int],
    namespace: str,
) -> dict[str, Any]:
    """The merge patch that sets ``weights`` on every HTTP route of ``virtualservice``."""
    new = reweight(
        virtualservice, subsets_by_host(destinationrules, namespace), weights, namespace=namespace
    )
    patch: dict[str, Any] = {"spec": {"http": new["spec"]["http"]}}
    resource_version = (virtualservice.get("metadata") or {}).get("resourceVersion")
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch
