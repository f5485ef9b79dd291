"""The VirtualService/DestinationRule cross-check: routes to subsets that do not exist.

Istio accepts a VirtualService that routes to a subset no DestinationRule defines, and
istiod still names the Envoy cluster ``outbound|PORT|SUBSET|HOST``; that cluster does not
exist, so the gateway answers ``503`` with flag ``NC`` until the subset appears. ``istioctl
analyze`` reports it as IST0101. :func:`route_problems` lists such routes (the loader warns
about them); :func:`check_routes` raises on the first one: the lab's make-before-break rule,
the embedded backend's ``strict_routes=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from lab_app.manifests.istio import check_weights
from lab_app.manifests.model import Manifest, as_manifest, error_at
from lab_app.manifests.names import short_name


@dataclass(frozen=True)
class RouteProblem:
    """A route to a subset that no DestinationRule defines (``istioctl analyze`` IST0101).

    Istio accepts such a VirtualService; istiod still names the cluster
    ``outbound|PORT|SUBSET|HOST``, which does not exist, so Envoy answers ``503`` flag ``NC``.
    """

    virtualservice: str  # metadata.name
    field: str  # e.g. spec.http[0].route[1].destination.subset
    host: str
    subset: str
    known: tuple[str, ...]  # the subsets the host's DestinationRule defines
    has_destinationrule: bool
    source: str = ""
    mirror: bool = False
    manifest: Manifest | None = dataclass_field(default=None, compare=False, repr=False)

    @property
    def analyze_message(self) -> str:
        """The text ``istioctl analyze`` prints for it (level Error, code IST0101)."""
        what = "mirror+subset" if self.mirror else "host+subset"
        return f'Referenced {what} in destinationrule not found: "{self.host}+{self.subset}"'

    @property
    def message(self) -> str:
        defined = (
            f"it defines: {', '.join(self.known) or 'none'}"
            if self.has_destinationrule
            else "no DestinationRule defines subsets for this host"
        )
        return (
            f"IST0101 virtualservice/{self.virtualservice} {self.field}: {self.analyze_message}"
            f" ({defined}); Envoy has no cluster for it and answers 503 NC until the"
            " DestinationRule defines it"
        )


def check_routes(
    virtualservices: Iterable[Mapping[str, Any] | Manifest],
    destinationrules: Iterable[Mapping[str, Any] | Manifest],
    *,
    require_destinationrule: bool = True,
) -> None:
    """Check VirtualService routes against DestinationRules (make-before-break).

    Every ``subset`` a route or mirror names must be defined by the DestinationRule of its
    host, or Envoy has no cluster for it and answers 503 with flag NC. Weights must be
    integers 0..100 and, with more than one destination, not all 0. Hosts are compared by
    their short name (``svc``, ``svc.ns``, ``svc.ns.svc.cluster.local`` are the same
    service), since the lab keeps everything in one namespace.

    With ``require_destinationrule=False``, a subset whose host has no DestinationRule in
    the given set is not an error (it may already be in the cluster).

    This is the lab's strict check (``strict_routes=True``); Istio itself accepts such routes
    (see :func:`route_problems`, which lists them without raising).
    """
    checked = [as_manifest(vs) for vs in virtualservices]
    for vs in checked:
        check_weights(vs)
    problems = route_problems(
        checked, destinationrules, require_destinationrule=require_destinationrule
    )
    if not problems:
        return
    first = problems[0]
    vs = first.manifest or as_manifest({"kind": "VirtualService"})
    if not first.has_destinationrule:
        raise error_at(
            vs,
            first.field.rsplit(".", 1)[0] + ".host",
            f"no DestinationRule for host {first.host!r} defines subsets,"
            f" so subset {first.subset!r} does not exist (Envoy would answer 503 NC):"
            " apply the DestinationRule first (make before break)",
        )
    raise error_at(
        vs,
        first.field,
        f"subset {first.subset!r} is not defined by the DestinationRule of host"
        f" {first.host!r} (it defines: {', '.join(first.known) or 'none'}); Envoy would have"
        " no cluster for it and answer 503 NC: add the subset to the"
        " DestinationRule before routing to it (make before break)",
    )


def route_problems(
    virtualservices: Iterable[Mapping[str, Any] | Manifest],
    destinationrules: Iterable[Mapping[str, Any] | Manifest],
    *,
    require_destinationrule: bool = True,
) -> list[RouteProblem]:
    """Every route or mirror to a subset the DestinationRules do not define, in order.

    Hosts are compared by short name. With ``require_destinationrule=False`` a host with
    no DestinationRule in the given set is skipped (it may already be in the cluster).
    """
    virtualservices = list(virtualservices)
    subsets: dict[str, dict[str, str]] = {}  # host -> subset -> DestinationRule name
    for item in destinationrules:
        dr = as_manifest(item)
        spec = dr.obj.get("spec") or {}
        host = short_name(str(spec.get("host", "")))
        names = subsets.setdefault(host, {})
        for subset in spec.get("subsets") or []:
            names[str(subset.get("name"))] = dr.name
    problems: list[RouteProblem] = []
    for item in virtualservices:
        vs = as_manifest(item)
        for i, route in enumerate((vs.obj.get("spec") or {}).get("http") or []):
            targets = [
                (f"spec.http[{i}].route[{j}].destination", d.get("destination") or {})
                for j, d in enumerate(route.get("route") or [])
            ]
            if route.get("mirror"):
                targets.append((f"spec.http[{i}].mirror", route["mirror"]))
            for path, dest in targets:
                subset = dest.get("subset")
                if subset is None:
                    continue
                host = short_name(str(dest.get("host", "")))
                if host not in subsets and not require_destinationrule:
                    continue
                if subset in subsets.get(host, {}):
                    continue
                problems.append(
                    RouteProblem(
                        virtualservice=vs.name,
                        field=f"{path}.subset",
                        host=str(dest.get("host", "")),
                        subset=str(subset),
                        known=tuple(sorted(subsets.get(host, {}))),
                        has_destinationrule=host in subsets,
                        source=vs.source,
                        mirror=path.endswith(".mirror"),
                        manifest=vs,
                    )
                )
    return problems
