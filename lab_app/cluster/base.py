"""The one interface both backends implement: embedded (processes + real Envoy) and kubernetes.

Notebooks and experiments only talk to this interface, so the same notebook runs on a
laptop without Docker and on a kind/minikube cluster with Istio. Every method that can
take time is ``async`` so the kernel's event loop (and the load generator running on
it) keeps going while a rollout is awaited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lab_app.cluster.events import Event
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.manifests.names import DEFAULT_SERVICE

ManifestSource = str | Path | Mapping[str, Any] | list[Mapping[str, Any]]


@dataclass(frozen=True)
class PodInfo:
    """What ``kubectl get pods`` would show, plus the image the pod runs."""

    name: str
    labels: dict[str, str]
    phase: str  # Pending | Running | Succeeded | Failed | Terminating
    ready: bool
    restarts: int
    image: str
    deployment: str = ""
    ip: str = ""
    port: int = 0
    pid: int | None = None
    sidecar: bool = False
    last_state: str = ""  # e.g. "OOMKilled", "Error", "Completed"
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Cluster(Protocol):
    """A place to roll the demo service out. See ``connect``."""

    backend: str
    namespace: str

    async def build_image(self, version: str, **options: Any) -> str:
        """Build the demo service at ``version`` and return an image reference."""

    async def apply(self, source: ManifestSource) -> list[str]:
        """Create or update resources; returns ``kind/name`` of each applied object."""

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete resources given as manifests or as ``kind/name``."""

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """What ``kubectl set image`` does: change the pod template, start a rolling update."""

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """Return when the Deployment's rollout is complete; raise RolloutTimeoutError."""

    async def scale(self, deployment: str, replicas: int) -> None:
        """Set ``spec.replicas``."""

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Set the route weights by subset name (make-before-break with the DestinationRule)."""

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Wait until the proxies hold the latest applied config (``istioctl proxy-status``
        SYNCED): Istio applies routing asynchronously, so a request sent right after
        ``apply`` may still meet the old route, or no listener at all."""

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        """The pods, optionally filtered by labels."""

    def events(self, since: float | None = None) -> list[Event]:
        """Events recorded so far (optionally only those after ``since``)."""

    def subscribe(self) -> AsyncIterator[Event]:
        """A live stream of events from now on (for charts)."""

    def gateway_url(self) -> str:
        """Base URL of the ingress gateway, e.g. ``http://127.0.0.1:31380``."""

    def service_url(self, service: str = DEFAULT_SERVICE) -> str:
        """Base URL that reaches a Service without Istio (kube-proxy / NodePort path)."""

    async def proxy_config(self, kind: ProxyConfigKind = "routes", proxy: str = "gateway") -> Any:
        """What ``istioctl proxy-config KIND`` shows for the gateway (or a sidecar)."""

    async def proxy_stats(
        self, proxy: str = "gateway", filter: str | None = None
    ) -> Mapping[str, float]:
        """A proxy's Envoy counters and gauges (``/stats?filter=REGEX``), e.g.
        ``upstream_rq_active``: how progressive delivery sees a subset's traffic."""

    async def logs(self, pod: str, tail: int | None = None) -> str:
        """The pod's container log."""

    async def close(self) -> None:
        """Stop everything this cluster object started (embedded) or its watches (kubernetes)."""
