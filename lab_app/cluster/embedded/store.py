"""The embedded API server's storage: applied objects by kind and name, and the kind registry.

Why on its own: ``apply``, ``delete`` and ``set_weights`` all work the same way -- copy the
objects (``Store.staged()``), change the copy, check the *whole future state* (routes to
undefined subsets, a trial translation for the gateway), and only then commit. The checks
that need nothing but the objects live here; ``staging.py`` runs the sequence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_app.cluster.base import ManifestSource
from lab_app.cluster.events import EventKind
from lab_app.errors import ConfigError, ManifestError
from lab_app.manifests import RouteProblem, route_problems

SUPPORTED_KINDS = (
    "Namespace",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Gateway",
    "VirtualService",
    "DestinationRule",
)
ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule")
KIND_ALIASES = {
    "ns": "Namespace",
    "namespace": "Namespace",
    "cm": "ConfigMap",
    "configmap": "ConfigMap",
    "svc": "Service",
    "service": "Service",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "hpa": "HorizontalPodAutoscaler",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "gw": "Gateway",
    "gateway": "Gateway",
    "vs": "VirtualService",
    "virtualservice": "VirtualService",
    "dr": "DestinationRule",
    "destinationrule": "DestinationRule",
    "pod": "Pod",
    "po": "Pod",
}
REF_RE = re.compile(r"^([A-Za-z]+)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")

Emit = Callable[..., Any]


@dataclass
class Stored:
    """An applied object and the file it came from (for error messages)."""

    obj: dict[str, Any]
    source: str
    manifest: Any = None  # lab_app.manifests.Manifest when known


Objects = dict[str, dict[str, Stored]]  # kind -> name -> Stored
ObjectsView = Mapping[str, Mapping[str, Stored]]


class Store:
    """The applied objects (one namespace) and the labels of the applied Namespace."""

    def __init__(self) -> None:
        self.objects: Objects = {k: {} for k in SUPPORTED_KINDS}
        self.namespace_labels: dict[str, str] = {}

    def staged(self) -> Objects:
        """A copy to change and check before committing (the objects themselves are shared)."""
        return {k: dict(v) for k, v in self.objects.items()}

    def configmaps(self) -> dict[str, dict[str, Any]]:
        return {name: s.obj for name, s in self.objects["ConfigMap"].items()}

    def services(self) -> dict[str, dict[str, Any]]:
        return {name: s.obj for name, s in self.objects["Service"].items()}

    def subsets_by_host(self) -> dict[str, set[str]]:
        """Subset names each DestinationRule defines, by the short name of its host."""
        out: dict[str, set[str]] = {}
        for stored in self.objects["DestinationRule"].values():
            spec = stored.obj.get("spec") or {}
            short = str(spec.get("host", "")).split(".")[0]
            out.setdefault(short, set()).update(
                str(s.get("name")) for s in spec.get("subsets") or []
            )
        return out


def resolve_refs(source: ManifestSource | str) -> list[tuple[str, str]]:
    """``kind/name`` (aliases as kubectl's: ``vs``, ``deploy``, ...) or manifests ->
    ``(Kind, name)`` pairs; a path that exists is read as manifests."""
    if isinstance(source, str):
        m = REF_RE.match(source.strip())
        if m and not Path(source).exists():
            kind = KIND_ALIASES.get(m.group(1).lower())
            if kind is None:
                raise ConfigError(
                    f"{source}: unknown kind {m.group(1)!r} "
                    f"(known: {', '.join(sorted(set(KIND_ALIASES.values())))})"
                )
            return [(kind, m.group(2))]
    from lab_app.manifests import load_documents

    return [(d.kind, d.name) for d in load_documents(source)]


def check_document(m: Any, staged: ObjectsView, namespace: str) -> None:
    """What the embedded backend refuses in one manifest (Deployments: see ``staging.py``)."""
    kind, name = m.kind, m.name
    if kind not in SUPPORTED_KINDS:
        raise ManifestError(
            f"kind {kind!r} is not supported by the embedded backend "
            f"(supported: {', '.join(SUPPORTED_KINDS)})",
            source=m.source,
            field="kind",
        )
    ns = (m.obj.get("metadata") or {}).get("namespace")
    if ns and kind != "Namespace" and ns != namespace:
        raise ManifestError(
            f"namespace {ns!r} is not this cluster's namespace {namespace!r} "
            "(manifests carry no namespace; the backend applies them into its own)",
            source=m.source,
            field="metadata.namespace",
        )
    if kind == "Service":
        spec = m.obj.get("spec") or {}
        if not spec.get("selector"):
            raise ManifestError(
                "a Service without a selector has no endpoints in the embedded backend",
                source=m.source,
                field="spec.selector",
            )
        if not spec.get("ports"):
            raise ManifestError("the Service needs a port", source=m.source, field="spec.ports")
    elif kind == "Gateway":
        others = [n for n in staged["Gateway"] if n != name]
        if others:
            raise ManifestError(
                f"the embedded backend runs one ingress gateway; Gateway "
                f"{others[0]!r} is already applied (delete it first)",
                source=m.source,
                field="metadata.name",
            )


def routes_of(objects: ObjectsView) -> tuple[list[Any], list[Any]]:
    """The VirtualServices and DestinationRules (as manifests when known, for field paths)."""
    vss = [s.manifest or s.obj for s in objects["VirtualService"].values()]
    drs = [s.manifest or s.obj for s in objects["DestinationRule"].values()]
    return vss, drs


def problems_of(objects: ObjectsView) -> list[RouteProblem]:
    """Routes to subsets no DestinationRule defines (Istio's IST0101)."""
    vss, drs = routes_of(objects)
    return route_problems(vss, drs) if vss else []


def warn_routes(
    emit: Emit, problems: list[RouteProblem], before: list[RouteProblem], applied: set[str]
) -> None:
    """A ``ConfigWarning`` (IST0101, as ``istioctl analyze`` reports it) per route to an
    undefined subset that is new, or whose VirtualService was just applied."""
    old = {(p.virtualservice, p.field, p.subset) for p in before}
    for p in problems:
        if p.virtualservice in applied or (p.virtualservice, p.field, p.subset) not in old:
            emit(
                EventKind.CONFIG_WARNING,
                f"virtualservice/{p.virtualservice}",
                p.message,
                {"reason": "ReferencedResourceNotFound", "code": "IST0101",
                 "analyze": p.analyze_message, "virtualservice": p.virtualservice,
                 "host": p.host, "subset": p.subset, "field": p.field,
                 "known_subsets": list(p.known)},
            )  # fmt: skip
