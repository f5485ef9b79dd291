"""What the translators produce and consume: endpoints in, Envoy resources out.

``Endpoint`` is what the lab's endpoint controller publishes for a Service (the embedded
EndpointSlice); ``Snapshot`` is the full set of Envoy v3 resources one proxy should run, which
``xds.XdsPusher`` writes to the files Envoy watches. Kept apart from the translation so that
``xds.py`` and the controllers can use the types without importing the translators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Endpoint", "Snapshot"]


@dataclass(frozen=True)
class Endpoint:
    """One pod address behind a Service: where its (sidecar or app) port listens."""

    ip: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    pod: str = ""
    ready: bool = True


@dataclass
class Snapshot:
    """Envoy v3 resources (dicts without ``@type``) that one proxy should run."""

    listeners: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)  # RouteConfiguration
    clusters: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # ClusterLoadAssignment

    def cluster(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.clusters if c["name"] == name), None)

    def route_config(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.routes if r["name"] == name), None)

    def load_assignment(self, cluster_name: str) -> dict[str, Any] | None:
        return next((e for e in self.endpoints if e["cluster_name"] == cluster_name), None)

    def cluster_names(self) -> list[str]:
        return [c["name"] for c in self.clusters]
