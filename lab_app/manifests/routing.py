"""Weighted routes: the shares they give, and the one ``set_weights`` rule both backends use.

Istio's weights are relative: a destination gets ``weight / sum of weights`` of the
requests of its route, and a route with a single destination sends it everything whatever
its weight (the reference, ``HTTPRouteDestination.weight``). The embedded backend reports
these shares in its ``WEIGHTS_CHANGED`` events and gateway info; the progressive
controller compares the gateway's split with the one it asked for.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from lab_app.errors import ConfigError, ManifestError
from lab_app.manifests.names import local_name, short_name

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


# --------------------------------------------------------------------------- set_weights
def validate_weights(weights: Mapping[str, int]) -> dict[str, int]:
    """``set_weights``' argument: integers 0..100 by subset name, at least one positive.

    Raises ``ConfigError`` naming the subset; both backends call this before anything else.
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError("weights: give at least one subset, e.g. {'version-v1': 90, ...}")
    checked: dict[str, int] = {}
    for subset, weight in weights.items():
        if not isinstance(subset, str) or not subset:
            raise ConfigError(f"weights: subset names must be non-empty strings, not {subset!r}")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ConfigError(f"weights[{subset!r}] must be an integer 0..100, not {weight!r}")
        if not 0 <= weight <= 100:
            raise ConfigError(f"weights[{subset!r}] = {weight} is outside 0..100")
        checked[subset] = weight
    if not any(checked.values()):
        raise ConfigError("weights: all weights are 0, which would route nowhere")
    return checked


def subsets_by_host(
    destinationrules: Iterable[Mapping[str, Any]], namespace: str | None = None
) -> dict[str, set[str]]:
    """The subset names each DestinationRule defines, by its host as seen from ``namespace``
    (``local_name``; with no namespace, the Service name ``short_name``)."""
    out: dict[str, set[str]] = {}
    for rule in destinationrules:
        spec = rule.get("spec") or {}
        host = str(spec.get("host", ""))
        key = local_name(host, namespace) if namespace else short_name(host)
        out.setdefault(key, set()).update(
            str(s["name"]) for s in spec.get("subsets") or [] if s.get("name")
        )
    return out


def reweight(
    virtualservice: Mapping[str, Any],
    subsets: Mapping[str, Collection[str]],
    weights: Mapping[str, int],
    *,
    namespace: str | None = None,
    where: str = "",
) -> dict[str, Any]:
    """The VirtualService with ``weights`` as the whole split of every http route (a new dict).

    The one rule both backends apply for ``set_weights`` (the embedded backend commits the
    result; the kubernetes backend sends its ``spec.http`` as a merge patch):

    * ``weights`` is the complete split: a route's destinations become exactly the named
      subsets, in the order given; a subset not named leaves the route (weight 0 keeps it);
    * a destination that is already there keeps its other fields (headers, ...); a new one
      is the route's host and port with that subset;
    * make before break: every named subset, at any weight, must be defined by the
      DestinationRule of the route's host (``subsets``, from ``subsets_by_host``), or the
      gateway would answer ``503 NC`` for its share (``ManifestError`` naming the field);
    * a route whose destinations name several hosts is left alone.
    """
    checked = validate_weights(weights)
    name = (virtualservice.get("metadata") or {}).get("name", "?")
    where = where or f"virtualservice/{name}"
    obj = copy.deepcopy(dict(virtualservice))
    routes = (obj.get("spec") or {}).get("http") or []
    if not routes:
        raise ManifestError(
            "the VirtualService has no http routes", source=where, field="spec.http"
        )
    for i, route in enumerate(routes):
        destinations = route.get("route") or []
        if not destinations:
            raise ManifestError("this http route has no destination", source=where,
                                field=f"spec.http[{i}].route")  # fmt: skip
        hosts = {str((d.get("destination") or {}).get("host", "")) for d in destinations}
        if len(hosts) != 1:
            continue
        host = hosts.pop()
        key = local_name(host, namespace) if namespace else short_name(host)
        defined = set(subsets.get(key, ()))
        missing = [s for s in checked if s not in defined]
        if missing:
            raise ManifestError(
                f"subset {', '.join(repr(m) for m in missing)} is not defined by the "
                f"DestinationRule of host {host!r} (it defines: "
                f"{', '.join(sorted(defined)) or 'none'}): add it to the DestinationRule "
                "first (make before break)",
                source=where,
                field=f"spec.http[{i}].route.destination.subset",
            )
        present = {(d.get("destination") or {}).get("subset"): d for d in destinations}
        template = destinations[0].get("destination") or {}
        new: list[dict[str, Any]] = []
        for subset, weight in checked.items():
            entry = copy.deepcopy(present.get(subset)) if subset in present else None
            if entry is None:
                dest: dict[str, Any] = {"host": host, "subset": subset}
                if "port" in template:
                    dest["port"] = copy.deepcopy(template["port"])
                entry = {"destination": dest}
            entry["weight"] = weight
            new.append(entry)
        route["route"] = new
    return obj
