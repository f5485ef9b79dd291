"""What the gateway routes for a VirtualService, read from the gateway itself.

Before a cutover moves any weight, the lab checks make-before-break where it matters: in the
gateway's Envoy. Istio turns every subset of a DestinationRule into an Envoy cluster named
``outbound|PORT|SUBSET|FQDN`` and every weighted destination of a VirtualService into a
weighted cluster of a route; ``proxy_config("clusters")`` and ``proxy_config("routes")`` (the
lab's ``istioctl proxy-config``, on both backends) show both. So:

* the canary's subset must already be a cluster of the gateway (else routing to it would be
  ``503 NC``, no cluster);
* the subsets the VirtualService routes to now, other than stable and canary, get weight 0
  during the cutover, so the split is exactly stable/canary;
* the subsets' cluster names are also the names of the gateway's counters the checks read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab_app.cluster.base import Cluster
from lab_app.errors import ConfigError, LabError, ManifestError
from lab_app.manifests.routing import weight_shares


@dataclass(frozen=True)
class Routing:
    """The gateway's view of one VirtualService and the subsets of its hosts."""

    virtualservice: str
    hosts: tuple[str, ...]  # destination FQDNs of the VirtualService's routes
    subsets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # subset -> cluster names
    weights: tuple[dict[str, int], ...] = ()  # per route: {subset: weight}

    def clusters_of(self, *subsets: str) -> dict[str, tuple[str, ...]]:
        return {s: self.subsets.get(s, ()) for s in subsets}

    def routed(self) -> set[str]:
        """Subsets with a positive weight in some route."""
        return {s for route in self.weights for s, w in route.items() if w > 0}

    def shares(self) -> list[dict[str, float]]:
        """Per route, each subset's share of traffic (weight / sum)."""
        return [weight_shares(route) for route in self.weights]


def _rows(view: object, kind: str) -> list[Mapping[str, Any]]:
    """The rows of a ``proxy_config`` view (typed ``Any`` by ``Cluster``: checked here)."""
    rows = getattr(view, "rows", None)
    if not isinstance(rows, list):
        raise LabError(
            f"proxy_config({kind!r}) returned {type(view).__name__}, not rows: this backend "
            "cannot show the gateway's config, so the cutover cannot check its subsets"
        )
    return rows


def _parse_cluster(name: str) -> tuple[str, str, str] | None:
    """``outbound|8080|version-v2|svc.ns.svc.cluster.local`` -> (port, subset, fqdn)."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] != "outbound":
        return None
    return parts[1], parts[2], parts[3]


def routing_from_rows(
    virtualservice: str,
    route_rows: Iterable[Mapping[str, Any]],
    cluster_rows: Iterable[Mapping[str, Any]],
) -> Routing:
    """Build a ``Routing`` from the rows of ``proxy_config("routes")`` and ``("clusters")``."""
    ours = [
        r
        for r in route_rows
        if str(r.get("VIRTUAL SERVICE", "")).rsplit(".", 1)[0] == virtualservice
    ]
    if not ours:
        raise ConfigError(
            f"virtualservice/{virtualservice}: the gateway has no route from it (not applied, "
            "not bound to the gateway, or a different name); apply it before the cutover"
        )
    hosts: list[str] = []
    weights: list[dict[str, int]] = []
    for row in ours:
        route: dict[str, int] = {}
        for cluster, weight in (row.get("weights") or {}).items():
            parsed = _parse_cluster(str(cluster))
            if parsed is None:
                continue
            _, subset, fqdn = parsed
            if fqdn not in hosts:
                hosts.append(fqdn)
            if subset:
                route[subset] = route.get(subset, 0) + int(weight)
        weights.append(route)
    subsets: dict[str, list[str]] = {}
    for row in cluster_rows:
        name = str(row.get("name") or "")
        parsed = _parse_cluster(name)
        if parsed is None:
            continue
        _, subset, fqdn = parsed
        if subset and fqdn in hosts:
            subsets.setdefault(subset, []).append(name)
    return Routing(
        virtualservice=virtualservice,
        hosts=tuple(hosts),
        subsets={k: tuple(sorted(v)) for k, v in sorted(subsets.items())},
        weights=tuple(weights),
    )


def require_subsets(routing: Routing, *subsets: str) -> None:
    """ManifestError naming the first subset no DestinationRule of the hosts defines."""
    for subset in subsets:
        if subset not in routing.subsets:
            hosts = ", ".join(routing.hosts) or "?"
            known = ", ".join(sorted(routing.subsets)) or "none"
            raise ManifestError(
                f"subset {subset!r} is not defined by the DestinationRule of host {hosts}: the "
                f"gateway has no cluster for it (subsets it has: {known}); add the subset to "
                "the DestinationRule and apply it before the cutover (make before break)",
                source=f"destinationrule for {hosts}",
                field="spec.subsets",
            )


async def read_routing(
    cluster: Cluster, virtualservice: str, settle_timeout: float = 30.0
) -> Routing:
    """Wait for pending config pushes, then read the gateway's routes and clusters."""
    await cluster.config_settled(settle_timeout)
    routes = _rows(await cluster.proxy_config("routes", "gateway"), "routes")
    clusters = _rows(await cluster.proxy_config("clusters", "gateway"), "clusters")
    return routing_from_rows(virtualservice, routes, clusters)
