"""``set_weights`` for the embedded backend: a VirtualService's route weights by subset name.

Make before break: a weight may only name a subset the route's DestinationRule defines, or
the gateway would answer 503 NC for that share. ``reweight`` is the patch itself -- pure, on
plain dicts, so it can be tested alone and shared with the kubernetes backend
(``kube/weights.py``); ``staging.Stager.set_weights`` checks the result with the rest of the
objects, commits it and emits ``WeightsChanged``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from lab_app.errors import ManifestError
from lab_app.manifests import virtualservice_shares as route_shares

__all__ = ["check_weights", "reweight", "route_shares"]


def check_weights(weights: Mapping[str, int], where: str) -> None:
    """A non-empty mapping of integer weights 0..100 (``ManifestError`` naming the subset)."""
    if not isinstance(weights, Mapping) or not weights:
        raise ManifestError(
            "weights must be a non-empty {subset: weight} mapping", source=where, field="weights"
        )
    for subset, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
            raise ManifestError(
                f"weight of subset {subset!r} must be an integer 0..100, got {w!r}",
                source=where,
                field=f"weights[{subset!r}]",
            )


def reweight(
    vs: Mapping[str, Any],
    subsets_defined: Mapping[str, Collection[str]],
    weights: Mapping[str, int],
    *,
    where: str = "virtualservice",
) -> dict[str, Any]:
    """The VirtualService ``vs`` with ``weights`` set on every http route (a new dict).

    ``subsets_defined``: the subsets the DestinationRules define, by the short name of their
    host (``reviews`` for ``reviews.ns.svc.cluster.local``). Subsets not named keep their
    weight; a named subset that a route does not have yet is added as a destination of that
    route's host. A route whose destinations name several hosts is left alone. Refused
    (``ManifestError`` with ``source=where``): no http route, a subset the DestinationRule
    lacks, a destination left without a weight, a route whose weights are all 0.
    """
    check_weights(weights, where)
    obj = copy.deepcopy(dict(vs))
    routes = (obj.get("spec") or {}).get("http") or []
    if not routes:
        raise ManifestError(
            "the VirtualService has no http routes", source=where, field="spec.http"
        )
    for i, route in enumerate(routes):
        dests = route.setdefault("route", [])
        hosts = {str((d.get("destination") or {}).get("host", "")) for d in dests}
        if len(hosts) != 1:
            continue
        host = hosts.pop()
        subsets = set(subsets_defined.get(host.split(".")[0], ()))
        for subset in weights:
            if subset not in subsets:
                raise ManifestError(
                    f"subset {subset!r} is not defined by the DestinationRule of host "
                    f"{host!r} (it defines: {', '.join(sorted(subsets)) or 'none'}): add "
                    "it to the DestinationRule first (make before break)",
                    source=where,
                    field=f"spec.http[{i}].route.destination.subset",
                )
        present = {(d.get("destination") or {}).get("subset"): d for d in dests}
        template = dests[0].get("destination") or {}
        for subset, w in weights.items():
            if subset in present:
                present[subset]["weight"] = w
            else:
                dest = {"host": host, "subset": subset}
                if "port" in template:
                    dest["port"] = copy.deepcopy(template["port"])
                dests.append({"destination": dest, "weight": w})
        if len(dests) > 1:
            for j, d in enumerate(dests):
                if "weight" not in d:
                    raise ManifestError(
                        "this destination has no weight; give every subset of the route a weight",
                        source=where,
                        field=f"spec.http[{i}].route[{j}].weight",
                    )
            if sum(int(d["weight"]) for d in dests) == 0:
                raise ManifestError(
                    f"the weights of route {i} are all 0: no traffic could be routed",
                    source=where,
                    field=f"spec.http[{i}].route[*].weight",
                )
    return obj
