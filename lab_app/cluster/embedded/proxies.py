"""Every Envoy the embedded cluster runs, found by name: gateway, kube-proxies, sidecars.

``Proxies`` owns the cluster-wide ones -- the ingress gateway (``dataplane.IngressGateway``,
configured from the Istio objects by ``build_gateway``) and one kube-proxy stand-in per
Service (``dataplane.ServiceProxy``) -- and finds a pod's sidecar through the kubelet's pods.
It answers the diagnostics that go through any of them: ``proxy_config`` (``istioctl
proxy-config``), ``proxy_stats``, the pids, the latest push outcome of each, and whether the
config settled (``settle.py``).

Why ``proxies.py`` and not ``proxy.py`` like ``kube/proxy.py``: that module reads *one* Envoy
of a real mesh (via istioctl or a port-forward); this one runs and keeps track of *all* the
lab's Envoys, the lookup by name being one of its jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_app.cluster.embedded import settle
from lab_app.cluster.embedded.dataplane import (
    IngressGateway,
    ManagedEnvoy,
    ServiceProxy,
    istiod_endpoints,
)
from lab_app.cluster.embedded.envoy import Endpoint, EnvoyProcess, Snapshot, gateway_snapshot
from lab_app.cluster.embedded.options import ClusterOptions
from lab_app.cluster.embedded.pods import Pod, free_port
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.store import ObjectsView, Store, Stored
from lab_app.cluster.embedded.weights import route_shares
from lab_app.cluster.events import Event
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.errors import ConfigError

Emit = Callable[..., Any]
GATEWAY_NAMES = ("gateway", "istio-ingressgateway", "proxy/gateway")
KINDS = ("routes", "clusters", "endpoints", "listeners")


@dataclass(kw_only=True, eq=False, repr=False)
class Proxies:
    """The gateway and kube-proxy Envoys, and lookups over them and the pods' sidecars.

    ``endpoints`` is the endpoints controller's published sets (a new Service gets an empty
    one here, as its kube-proxy starts) and ``pods`` the kubelet's live pods (read only).
    """

    options: ClusterOptions
    emit: Emit
    store: Store
    endpoints: dict[str, list[Endpoint]]
    pods: Mapping[str, Pod]
    gateway: IngressGateway | None = field(default=None, init=False)
    services: dict[str, ServiceProxy] = field(default_factory=dict, init=False)
    gateway_port: int = field(default=0, init=False)
    # proxy -> its latest ConfigPushed/Rejected
    outcomes: dict[str, Event] = field(default_factory=dict, init=False)
    _state_dir: Path = field(default_factory=Path, init=False)
    _reaper: Reaper | None = field(default=None, init=False)
    _envoy_bin: str | Path | None = field(default=None, init=False)

    async def start(
        self, gateway_port: int, state_dir: Path, reaper: Reaper, envoy_bin: str | Path
    ) -> None:
        """Start the ingress gateway's Envoy (with no config until a Gateway is applied)."""
        self.gateway_port = gateway_port
        self._state_dir, self._reaper, self._envoy_bin = state_dir, reaper, envoy_bin
        self.gateway = IngressGateway(
            listen_port=gateway_port,
            debounce=self.options.istiod_debounce,
            debounce_max=self.options.istiod_debounce_max,
            build=self.build_gateway,
            workdir=state_dir / "proxies" / "gateway",
            emit=self.emit,
            reaper=reaper,
            envoy_bin=envoy_bin,
            backoff_scale=self.options.kubelet.backoff_scale,
        )
        await self.gateway.start()

    def record(self, event: Event) -> None:
        """Keep each proxy's latest push outcome (``config_settled`` reads it)."""
        if event.kind in settle.PUSH_OUTCOMES:
            self.outcomes[event.obj] = event

    # ------------------------------------------------------------ configuration

    def build_gateway(self, objects: ObjectsView | None = None) -> tuple[Snapshot, dict[str, Any]]:
        """istiod's translation for the gateway: its Envoy config from ``objects`` (default:
        the applied ones; ``staging`` passes the staged ones for a trial) and the endpoints."""
        objects = objects or self.store.objects
        gateways = [s.obj for _, s in sorted(objects["Gateway"].items())]
        # istiod: ready endpoints only, never terminating ones (kube-proxy's fallback is not its)
        endpoints = {name: istiod_endpoints(eps) for name, eps in self.endpoints.items()}
        info: dict[str, Any] = {
            "endpoints": sorted(e.pod for eps in endpoints.values() for e in eps),
        }
        if not gateways:
            return Snapshot(), info
        vss = [s.obj for s in objects["VirtualService"].values()]
        snapshot = gateway_snapshot(
            gateway=gateways[0],
            virtual_services=vss,
            destination_rules=[s.obj for s in objects["DestinationRule"].values()],
            endpoints=endpoints,
            services=[s.obj for s in objects["Service"].values()],
            listen_port=self.gateway_port,
            namespace=self.options.namespace,
            # istiod names the cluster of an undefined subset anyway: 503 NC (route.go)
            missing_subset="error" if self.options.strict_routes else "blackhole",
            # istiod's default retry policy retried 503 before Istio 1.24
            default_retry_codes=self.options.versions.default_retriable_status_codes,
        )
        info["weights"] = {
            (vs.get("metadata") or {}).get("name", ""): route_shares(vs) for vs in vss
        }
        return snapshot, info

    def trigger(self, reason: str) -> None:
        """Ask istiod for a (debounced) push to the gateway."""
        if self.gateway is not None:
            self.gateway.trigger(reason)

    async def add_service(self, stored: Stored) -> None:
        """A Service applied: update its kube-proxy, or start one on a free port."""
        name = stored.obj["metadata"]["name"]
        existing = self.services.get(name)
        if existing is not None:
            existing.update_service(stored.obj)
            existing.endpoints_changed(self.endpoints.get(name, []))
            return
        assert self._reaper is not None
        proxy = ServiceProxy(
            service=stored.obj,
            namespace=self.options.namespace,
            listen_port=free_port(),
            delay=self.options.propagation_delay,
            workdir=self._state_dir / "proxies" / f"kube-proxy-{name}",
            emit=self.emit,
            reaper=self._reaper,
            envoy_bin=self._envoy_bin,
            backoff_scale=self.options.kubelet.backoff_scale,
        )
        await proxy.start(self.endpoints.setdefault(name, []))
        self.services[name] = proxy

    async def remove_service(self, name: str) -> None:
        proxy = self.services.pop(name, None)
        self.endpoints.pop(name, None)
        if proxy is not None:
            await proxy.stop()
        self.trigger("config")

    def publish(self, service: str, endpoints: list[Endpoint], ready_changed: bool) -> None:
        """The endpoints controller's output: kube-proxy learns every change (after its
        delay), istiod only a change of the ready set."""
        proxy = self.services.get(service)
        if proxy is not None:
            proxy.endpoints_changed(endpoints)
        if ready_changed:
            self.trigger("endpoints")

    async def stop(self) -> list[Any]:
        stops = [sp.stop() for sp in self.services.values()]
        if self.gateway is not None:
            stops.append(self.gateway.stop())
        return await asyncio.gather(*stops, return_exceptions=True)

    # ------------------------------------------------------------ lookup, diagnostics

    def service_url(self, service: str) -> str:
        proxy = self.services.get(service)
        if proxy is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise ConfigError(f"service/{service} is not applied (services: {known})")
        return proxy.url

    def service_urls(self) -> dict[str, str]:
        return {name: proxy.url for name, proxy in sorted(self.services.items())}

    def envoy_of(self, proxy: str) -> EnvoyProcess:
        """``gateway``, ``kube-proxy-<service>`` (or ``service/<service>``), a pod name or
        ``<pod>-sidecar``, each also with a ``proxy/`` prefix."""
        if proxy in GATEWAY_NAMES:
            assert self.gateway is not None
            return self.gateway.proxy.envoy
        name = proxy.removeprefix("proxy/")
        for prefix in ("kube-proxy-", "kube-proxy/", "service/"):
            if name.startswith(prefix) and name[len(prefix) :] in self.services:
                return self.services[name[len(prefix) :]].proxy.envoy
        pod = self.pods.get(name.removesuffix("-sidecar"))
        if pod is not None and pod.sidecar is not None and pod.sidecar.envoy is not None:
            return pod.sidecar.envoy
        raise ConfigError(
            f"no proxy {proxy!r}: use 'gateway', 'kube-proxy-<service>' or a pod with a sidecar"
        )

    async def proxy_config(self, kind: ProxyConfigKind, proxy: str) -> Any:
        if kind not in KINDS:
            raise ConfigError(f"kind {kind!r} is not routes, clusters, endpoints or listeners")
        return await self.envoy_of(proxy).proxy_config(kind)

    async def proxy_stats(self, proxy: str, filter: str | None) -> dict[str, Any]:
        stats: dict[str, Any] = await self.envoy_of(proxy).admin.stats(filter)
        return stats

    def processes(self) -> dict[str, int]:
        """Pids of the gateway's and the kube-proxies' Envoys (the sidecars: the pods')."""
        out: dict[str, int] = {}
        if self.gateway is not None and self.gateway.proxy.envoy.alive:
            out["gateway"] = self.gateway.proxy.envoy.pid or 0
        for name, sp in self.services.items():
            if sp.proxy.envoy.alive:
                out[f"kube-proxy-{name}"] = sp.proxy.envoy.pid or 0
        return out

    def _managed(self) -> list[ManagedEnvoy]:
        managed = [sp.proxy for sp in self.services.values()]
        if self.gateway is not None:
            managed.append(self.gateway.proxy)
        return managed

    def rejections(self) -> dict[str, str]:
        """Proxies whose latest push was rejected (NACKed): ``proxy/NAME`` -> Envoy's reason."""
        live = {m.obj for m in self._managed()}
        live |= {p.sidecar.obj for p in self.pods.values() if p.sidecar is not None}
        return settle.rejections(self.outcomes, live)

    def errors(self) -> dict[str, str]:
        """Proxies whose restart after a crash failed: ``proxy/NAME`` -> the reason."""
        out: dict[str, str] = {}
        # the kube-proxies first, then the gateway, then the sidecars (the order they report)
        for proxy in self._managed():
            if proxy.error is not None:
                out[proxy.obj] = str(proxy.error)
        for pod in self.pods.values():
            if pod.sidecar is not None and pod.sidecar.error is not None:
                out[pod.sidecar.obj] = str(pod.sidecar.error)
        return out

    async def settled(self, timeout: float) -> None:
        """Wait for every pending push (``settle.wait_settled`` says what it raises)."""
        waits = [proxy.settled(timeout) for proxy in self.services.values()]
        if self.gateway is not None:
            waits.append(self.gateway.settled(timeout))
        await settle.wait_settled(waits, timeout, self.errors, self.rejections)
