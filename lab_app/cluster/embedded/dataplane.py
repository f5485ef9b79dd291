"""The cluster-wide proxies: the kube-proxy stand-in per Service and the Istio ingress gateway.

Both are real Envoy processes from the envoy layer (``lab_app.cluster.embedded.envoy``). This
module decides *what* they get and *when*:

* ``ServiceProxy`` plays kube-proxy for one Service: a TCP listener at ``service_url()`` that
  balances each new connection over the Service's ready endpoints -- or, when the Service has
  none, over its serving *and* terminating ones (KEP-1669 ProxyTerminatingEndpoints, GA in
  Kubernetes 1.28: ``kube_proxy_endpoints()``), so a 1-replica or scaled-to-zero Service keeps
  answering from a pod in its preStop. Endpoint changes reach it through a ``DelayLine``
  (``propagation_delay``, about 1 s like iptables' ``minSyncPeriod``), so a client keeps
  reaching a pod for a while after it started terminating and sees a refused or reset
  connection once the pod is gone.
* ``IngressGateway`` plays the ingress gateway plus istiod: Gateway / VirtualService /
  DestinationRule objects and the endpoints are translated into Envoy config and pushed after
  a ``Debouncer`` (``istiod_debounce``, 100 ms like ``PILOT_DEBOUNCE_AFTER``). istiod sends
  only ready endpoints, never terminating ones (``istiod_endpoints()``).

The endpoints controller hands both the same EndpointSlice-like list (``SliceEndpoint``: the
``ready``/``serving``/``terminating`` conditions); each consumer applies its own rule.

Every push is confirmed by the envoy layer (Envoy's ``update_success``/``update_rejected``
counters) and becomes a ``ConfigPushed`` or ``ConfigRejected`` event that names the endpoints
added and removed, and how long after the change it landed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NotRequired, TypedDict, Unpack

from lab_app.cluster.embedded.backoff import (
    CrashBackoff,
    report_restart_failure,
    restart_with_backoff,
)
from lab_app.cluster.embedded.envoy import (
    Endpoint,
    EnvoyProcess,
    PushResult,
    Snapshot,
    service_proxy_snapshot,
)
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.propagation import Debouncer, DelayLine
from lab_app.cluster.embedded.waiting import cancel_and_wait
from lab_app.cluster.events import EventKind

Emit = Callable[..., Any]
WATCH_SECONDS = 0.25  # how often a supervisor looks at its Envoy's process


@dataclass(frozen=True)
class SliceEndpoint(Endpoint):
    """An endpoint with the conditions of an EndpointSlice (discovery.k8s.io/v1).

    ``ready``: serving and not terminating (what most consumers use); ``serving``: the pod's
    readiness, whether or not it is terminating; ``terminating``: the pod is being deleted.
    """

    serving: bool = True
    terminating: bool = False


def _terminating(e: Endpoint) -> bool:
    return bool(getattr(e, "terminating", False))


def _serving(e: Endpoint) -> bool:
    return bool(getattr(e, "serving", e.ready))


def kube_proxy_endpoints(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """The endpoints kube-proxy balances over: the ready ones; if there is none, the ones that
    are serving and terminating (KEP-1669, pkg/proxy/topology.go ``CategorizeEndpoints``).

    The fallback endpoints come back marked ``ready`` so the Envoy translation (which sends
    only ready endpoints) carries them."""
    ready = [e for e in endpoints if e.ready]
    if ready:
        return ready
    return [replace(e, ready=True) for e in endpoints if _serving(e) and _terminating(e)]


def istiod_endpoints(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """The endpoints istiod sends to a gateway or sidecar: ready and not terminating (no
    fallback; Istio keeps terminating endpoints only for persistent sessions, not modelled)."""
    return [e for e in endpoints if e.ready and not _terminating(e)]


class EnvoyArgs(TypedDict):
    """What ``ServiceProxy`` and ``IngressGateway`` pass on to their ``ManagedEnvoy``."""

    workdir: Path
    emit: Emit
    reaper: Reaper | None
    envoy_bin: NotRequired[str | Path | None]
    backoff_scale: NotRequired[float]


class ManagedEnvoy:
    """An Envoy the cluster owns; its pushes become events."""

    def __init__(
        self,
        *,
        name: str,
        obj: str,
        workdir: Path,
        emit: Emit,
        reaper: Reaper | None,
        envoy_bin: str | Path | None = None,
        backoff_scale: float = 1.0,
    ) -> None:
        self.obj = obj
        self.envoy = EnvoyProcess(workdir, name=name, envoy_bin=envoy_bin)
        self._emit = emit
        self._reaper = reaper
        self.pushes = 0
        self.rejections = 0
        self.last_push: float | None = None
        self._last: Snapshot | None = None  # the last accepted config (for a restart)
        self.on_restart: Callable[[], None] | None = None
        self.restarts = 0
        self.error: Exception | None = None  # why the last restart failed (None: running)
        self._backoff = CrashBackoff(scale=backoff_scale)
        self._running_since = time.monotonic()
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    async def start(self, initial: Snapshot | None = None) -> None:
        await self.envoy.start(initial=initial, timeout=20.0)
        self._last = initial
        self._running_since = time.monotonic()
        if self._reaper is not None and self.envoy.pid:
            self._reaper.watch(self.envoy.pid)
        self._stopping = False
        self._watch = asyncio.create_task(self._watch_exit(), name=f"watch-{self.obj}")

    async def _watch_exit(self) -> None:
        """Supervise the Envoy like the kubelet supervises a container: when it dies (a crash,
        an OOM kill, a kill -9) restart it with its last accepted config, on the same listen
        port; if the restart fails (the port taken by another program, say), say why in an
        event, keep the reason in ``error`` and retry with the crash back-off."""
        while not self._stopping:
            await asyncio.sleep(WATCH_SECONDS)
            if self._stopping or self.envoy.alive:
                continue
            code, pid = self.envoy.returncode, self.envoy.pid
            self._emit(
                EventKind.PROXY_CRASHED,
                self.obj,
                f"Envoy (pid {pid}) exited with {code}",
                {"code": code, "pid": pid},
            )
            if self._reaper is not None and pid:
                self._reaper.unwatch(pid)
            delay = self._backoff.next_delay(time.monotonic() - self._running_since)
            started = await restart_with_backoff(
                lambda: self.envoy.start(initial=self._last, timeout=20.0),
                self._backoff,
                delay,
                stopping=lambda: self._stopping,
                failed=self._restart_failed,
            )
            if not started or self._stopping:
                return
            self.error = None
            self.restarts += 1
            self._running_since = time.monotonic()
            if self._reaper is not None and self.envoy.pid:
                self._reaper.watch(self.envoy.pid)
            self._emit(
                EventKind.PROXY_RESTARTED,
                self.obj,
                f"Envoy restarted with its last config (pid {self.envoy.pid})",
                {"pid": self.envoy.pid, "restarts": self.restarts},
            )
            if self.on_restart is not None:
                self.on_restart()  # catch up with changes it missed while down

    def _restart_failed(self, exc: Exception, delay: float) -> None:
        self.error = exc
        report_restart_failure(self._emit, self.obj, "restart", exc, delay)

    async def push(
        self, snapshot: Snapshot, *, reason: str, changed_at: float, data: Mapping[str, Any]
    ) -> PushResult:
        try:
            result = await self.envoy.push(snapshot)
        except Exception as exc:  # Envoy gone or its admin API unreachable
            result = PushResult(accepted=False, took_ms=0.0, details=[f"push failed: {exc}"])
        else:
            if result.accepted:
                self._last = snapshot
        now = time.time()
        lag_ms = (now - changed_at) * 1000
        payload = {
            **data,
            "reason": reason,
            "took_ms": round(result.took_ms, 2),
            "lag_ms": round(lag_ms, 1),
            "changed_at": changed_at,
            "details": list(result.details),
        }
        if result.accepted:
            self.pushes += 1
            self.last_push = now
            self._emit(
                EventKind.CONFIG_PUSHED,
                self.obj,
                f"{reason}: accepted {lag_ms:.0f} ms after the change",
                payload,
            )
        else:
            self.rejections += 1
            self._emit(
                EventKind.CONFIG_REJECTED,
                self.obj,
                f"{reason}: rejected ({'; '.join(result.details)[:300]})",
                payload,
            )
        return result

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._watch)
        await self.envoy.stop(graceful=False)
        if self._reaper is not None and self.envoy.pid:
            self._reaper.unwatch(self.envoy.pid)


def _pods(endpoints: Sequence[Endpoint]) -> list[str]:
    return sorted(e.pod or f"{e.ip}:{e.port}" for e in endpoints)


class ServiceProxy:
    """kube-proxy for one Service: per-connection balancing over ready endpoints (serving and
    terminating ones when none is ready), ~1 s late."""

    def __init__(
        self,
        *,
        service: Mapping[str, Any],
        namespace: str,
        listen_port: int,
        delay: float,
        **envoy: Unpack[EnvoyArgs],
    ) -> None:
        self.service = dict(service)
        self.name = str(service["metadata"]["name"])
        self.namespace = namespace
        self.listen_port = listen_port
        self.proxy = ManagedEnvoy(
            name=f"kube-proxy-{self.name}", obj=f"proxy/kube-proxy-{self.name}", **envoy
        )
        self._line: DelayLine[list[Endpoint]] | None = None
        self._delay = delay
        self.applied: list[Endpoint] = []
        self.latest: list[Endpoint] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def snapshot(self, endpoints: Sequence[Endpoint]) -> Snapshot:
        """The Envoy config for the Service's endpoints (all conditions; the choice is here)."""
        return service_proxy_snapshot(
            self.service,
            kube_proxy_endpoints(endpoints),
            listen_port=self.listen_port,
            namespace=self.namespace,
        )

    async def start(self, endpoints: Sequence[Endpoint]) -> None:
        await self.proxy.start(self.snapshot(endpoints))
        self.applied = list(endpoints)
        self._line = DelayLine(self._delay, self._apply, name=f"kube-proxy-{self.name}")
        self.proxy.on_restart = lambda: self.endpoints_changed(self.latest)

    def update_service(self, service: Mapping[str, Any]) -> None:
        self.service = dict(service)

    def endpoints_changed(self, endpoints: Sequence[Endpoint]) -> None:
        self.latest = list(endpoints)
        if self._line is not None:
            self._line.submit(list(endpoints))

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until kube-proxy (this Envoy) holds every endpoint change made so far."""
        if self._line is not None:
            await self._line.settled(timeout)

    async def _apply(self, endpoints: list[Endpoint], changed_at: float) -> None:
        used = kube_proxy_endpoints(endpoints)
        before, after = set(_pods(kube_proxy_endpoints(self.applied))), set(_pods(used))
        fallback = sorted(_pods([e for e in used if _terminating(e)]))
        await self.proxy.push(
            self.snapshot(endpoints),
            reason="endpoints" + (" (no ready endpoint: serving-terminating)" if fallback else ""),
            changed_at=changed_at,
            data={
                "service": self.name,
                "endpoints": sorted(after),
                "added": sorted(after - before),
                "removed": sorted(before - after),
                "terminating_fallback": fallback,
            },
        )
        self.applied = endpoints

    async def stop(self) -> None:
        if self._line is not None:
            await self._line.aclose()
        await self.proxy.stop()


class IngressGateway:
    """The ingress gateway Envoy plus istiod's debounced pushes to it."""

    def __init__(
        self,
        *,
        listen_port: int,
        debounce: float,
        debounce_max: float,
        build: Callable[[], tuple[Snapshot, dict[str, Any]]],
        **envoy: Unpack[EnvoyArgs],
    ) -> None:
        self.listen_port = listen_port
        self._build = build
        self.proxy = ManagedEnvoy(name="gateway", obj="proxy/gateway", **envoy)
        self._debounce = debounce
        self._debounce_max = debounce_max
        self._debouncer: Debouncer | None = None
        self._reasons: set[str] = set()
        self._emit = envoy["emit"]
        self.applied_endpoints: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    async def start(self) -> None:
        snapshot, info = self._build()
        await self.proxy.start(snapshot)
        self.applied_endpoints = set(info.get("endpoints", ()))
        self._debouncer = Debouncer(
            self._debounce, self._push, name="istiod", max_wait=self._debounce_max
        )
        self.proxy.on_restart = lambda: self.trigger("proxy restarted")

    def trigger(self, reason: str) -> None:
        self._reasons.add(reason)
        if self._debouncer is not None:
            self._debouncer.trigger()

    async def settled(self, timeout: float = 30.0) -> None:
        if self._debouncer is not None:
            await self._debouncer.settled(timeout)

    async def _push(self, changed_at: float) -> None:
        reasons, self._reasons = self._reasons, set()
        try:
            snapshot, info = self._build()
        except Exception as exc:  # validated at apply time; this is a lab bug if it happens
            self._emit(
                EventKind.CONFIG_REJECTED,
                "proxy/gateway",
                f"translation failed: {exc}",
                {"reason": ",".join(sorted(reasons))},
            )
            return
        after = set(info.get("endpoints", ()))
        before = self.applied_endpoints
        result = await self.proxy.push(
            snapshot,
            reason=",".join(sorted(reasons)) or "sync",
            changed_at=changed_at,
            data={
                **info,
                "endpoints": sorted(after),
                "added": sorted(after - before),
                "removed": sorted(before - after),
            },
        )
        if result.accepted:
            self.applied_endpoints = after

    async def stop(self) -> None:
        if self._debouncer is not None:
            await self._debouncer.aclose()
        await self.proxy.stop()
