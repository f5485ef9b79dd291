"""Traffic shares of weighted routes: the one calculator both backends and the controller use.

Istio's weights are relative: a destination gets ``weight / sum of weights`` of the
requests of its route, and a route with a single destination sends it everything whatever
its weight (the reference, ``HTTPRouteDestination.weight``). The embedded backend reports
these shares in its ``WEIGHTS_CHANGED`` events and gateway info; the progressive
controller compares the gateway's split with the one it asked for.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


def weight_shares(weights: Mapping[K, int]) -> dict[K, float]:
    """Each key's share, ``weight / sum``; every share is 0.0 when every weight is 0."""
    total = sum(weights.values())
    return {key: (weight / total if total else 0.0) for key, weight in weights.items()}


def destination_shares(http_route: Mapping[str, Any]) -> dict[str, float]:
    """The shares of one ``spec.http[]`` entry, by subset (or host when it has no subset).

    A single destination gets 1.0 whatever its weight; a missing weight is 0; with every
    weight 0 no destination gets traffic and the result is empty.
    """
    destinations = http_route.get("route") or []
    weights: dict[str, int] = {}
    for entry in destinations:
        destination = entry.get("destination") or {}
        key = str(destination.get("subset") or destination.get("host"))
        if len(destinations) == 1:
            return {key: 1.0}
        weights[key] = weights.get(key, 0) + int(entry.get("weight", 0))
    if sum(weights.values()) <= 0:
        return {}
    return weight_shares(weights)


def virtualservice_shares(virtualservice: Mapping[str, Any]) -> dict[str, float]:
    """The shares of the last ``spec.http[]`` route, the catch-all one in the lab's
    VirtualServices (``set_weights`` moves every route alike); empty without routes."""
    routes = (virtualservice.get("spec") or {}).get("http") or []
    return destination_shares(routes[-1]) if routes else {}
