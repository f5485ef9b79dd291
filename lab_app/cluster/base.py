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
    """A place to roll the demo service out. See ``connect``.

    Both backends implement every method with the same meaning and the same errors;
    ``tests/contract/`` runs one set of assertions on both (the kubernetes backend against
    the fake API server of ``tests/kube/``). Every error is a ``LabError`` (``lab_app.errors``):
    ``ConfigError`` for a bad argument, ``NotFoundError`` for a named object that does not
    exist, ``ManifestError`` (naming the source and field) for a manifest or a route the
    cluster refuses, ``RolloutTimeoutError`` / ``ConfigNotSettledError`` (both also
    ``TimeoutError``) for a deadline, ``ConfigRejectedError`` when a proxy NACKed its config.
    After ``close()`` every method but ``close()`` raises ``LabError``.
    """

    backend: str  # "embedded" or "kubernetes": a notebook asserts it got what it asked for
    namespace: str

    async def build_image(self, version: str, **options: Any) -> str:
        """Build the demo service at ``version`` and return an image reference.
        Raises ``ConfigError`` (unknown version or option), ``LabError`` (the build failed)."""

    async def apply(self, source: ManifestSource) -> list[str]:
        """Create or update resources (``kubectl apply --server-side``); returns ``kind/name``
        of each applied object. Raises ``ManifestError`` for an object the API server (or,
        embedded, istiod's validation) refuses; nothing of a refused batch is applied."""

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete resources given as manifests or as ``kind/name``; returns what was deleted.
        An object that does not exist is skipped (``kubectl delete --ignore-not-found``)."""

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """What ``kubectl set image`` does: change the pod template, start a rolling update.
        Raises ``NotFoundError`` (no such Deployment or container)."""

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """``kubectl rollout status``: return when the rollout is complete.
        Raises ``NotFoundError``, ``RolloutTimeoutError``."""

    async def scale(self, deployment: str, replicas: int) -> None:
        """``kubectl scale``: set ``spec.replicas``.
        Raises ``ConfigError`` (not an integer >= 0), ``NotFoundError``."""

    def deployment_status(self, deployment: str) -> Mapping[str, Any]:
        """``kubectl get deployment -o yaml``'s status: replicas, updated, ready, available.
        Raises ``NotFoundError``."""

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Set the whole split of every route by subset name (``manifests.routing.reweight``:
        subsets not named leave the route; make before break with the DestinationRule).
        Raises ``ConfigError`` (bad weights), ``NotFoundError`` (no such VirtualService),
        ``ManifestError`` (a subset the DestinationRule does not define, at any weight)."""

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Wait until the proxies hold the latest applied config (``istioctl proxy-status``
        SYNCED): Istio applies routing asynchronously, so a request sent right after
        ``apply`` may still meet the old route, or no listener at all.
        Raises ``ConfigNotSettledError`` (timeout), ``ConfigRejectedError`` (a NACK)."""

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        """The pods, optionally filtered by labels (``kubectl get pods -l``)."""

    def events(self, since: float | None = None) -> list[Event]:
        """Events recorded so far (optionally only those after ``since``)."""

    def subscribe(self) -> AsyncIterator[Event]:
        """A live stream of events from the call on (for charts); see ``events.EventHub``."""

    def note(self, message: str, obj: str = "lab", **data: Any) -> Event:
        """Add a ``Note`` event (experiments mark their steps with it)."""

    def gateway_url(self) -> str:
        """Base URL of the ingress gateway, e.g. ``http://127.0.0.1:31380``."""

    def service_url(self, service: str = DEFAULT_SERVICE) -> str:
        """Base URL that reaches a Service without Istio (kube-proxy / NodePort path).
        Raises ``LabError`` where there is no such path (a real cluster's ClusterIP)."""

    async def proxy_config(self, kind: ProxyConfigKind = "routes", proxy: str = "gateway") -> Any:
        """What ``istioctl proxy-config KIND`` shows for the gateway (or a sidecar)."""

    async def proxy_stats(
        self, proxy: str = "gateway", filter: str | None = None
    ) -> Mapping[str, float]:
        """A proxy's Envoy counters and gauges (``/stats?filter=REGEX``), e.g.
        ``upstream_rq_active``: how progressive delivery sees a subset's traffic."""

    async def logs(self, pod: str, tail: int | None = None, previous: bool = False) -> str:
        """The pod's app container log (``kubectl logs [--previous]``).
        Raises ``NotFoundError`` (no such pod), ``ConfigError`` (``previous`` before any
        restart)."""

    async def close(self) -> None:
        """Stop everything this cluster object started (embedded) or its watches (kubernetes),
        and delete the namespace it created unless asked to keep it."""
