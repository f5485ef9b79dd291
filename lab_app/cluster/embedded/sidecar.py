"""The Istio sidecar of one pod: a real Envoy in front of the app, terminated like pilot-agent.

Two ways Istio injects ``istio-proxy`` (``injection-template.yaml``), and why they matter:

* **classic** (a regular container): at pod deletion Kubernetes sends SIGTERM to
  ``istio-proxy`` at the same moment as it runs the app container's ``preStop``; a ``preStop``
  on the app does not protect the proxy. pilot-agent asks Envoy to drain, waits
  ``terminationDrainDuration`` (5 s by default) and stops Envoy, cutting whatever is still in
  flight through it -- a 10 s ``/k8s/longTask`` for example, which the gateway then answers
  with a 503 (istio/istio#11682). With ``EXIT_ON_ZERO_ACTIVE_CONNECTIONS`` pilot-agent instead
  waits ``MINIMUM_DRAIN_DURATION`` (5 s) and then until Envoy has no active downstream
  connection, checking every second (``pkg/envoy/agent.go``).
* **native** (an init container with ``restartPolicy: Always``, Kubernetes 1.29+): it starts
  and is ready before the app container; at deletion its own ``preStop`` (``pilot-agent
  request POST drain``) starts the drain, Envoy keeps serving while the app's preStop, SIGTERM
  and graceful shutdown run, and the kubelet sends it SIGTERM only once the app container has
  exited; pilot-agent then exits at once (it already drained). Nothing in flight is cut.

Both are reproduced here with the real Envoy process and its admin API. Envoy's
``--drain-time-s`` is ProxyConfig ``drainDuration`` (45 s by default), as pilot-agent passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_app.cluster.embedded.backoff import (
    CrashBackoff,
    report_restart_failure,
    restart_with_backoff,
)
from lab_app.cluster.embedded.envoy import EnvoyProcess, sidecar_snapshot
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.specs import PodTemplate
from lab_app.cluster.events import EventKind

if TYPE_CHECKING:
    from lab_app.cluster.embedded.pods import KubeletOptions

Emit = Callable[..., Any]
MINIMUM_DRAIN_DURATION = 5.0  # Istio's MINIMUM_DRAIN_DURATION default
ENVOY_DRAIN_DURATION = 45.0  # ProxyConfig drainDuration default: Envoy's --drain-time-s
WATCH_SECONDS = 0.25  # how often the supervisor looks at the sidecar's Envoy


class Sidecar:
    """One pod's ``istio-proxy`` container: inbound listener on the pod port -> the app port."""

    def __init__(
        self,
        *,
        pod: str,
        pod_port: int,
        app_port: int,
        workdir: Path,
        emit: Emit,
        reaper: Reaper | None,
        drain_duration: float = 5.0,
        exit_on_zero_active_connections: bool = False,
        minimum_drain_duration: float = MINIMUM_DRAIN_DURATION,
        envoy_drain_duration: float = ENVOY_DRAIN_DURATION,
        mode: str = "classic",
        on_change: Callable[[], None] = lambda: None,
        envoy_bin: str | Path | None = None,
        backoff_scale: float = 1.0,
    ) -> None:
        self.pod = pod
        self.pod_port = pod_port
        self.app_port = app_port
        self.workdir = workdir
        self.drain_duration = drain_duration  # terminationDrainDuration (classic SIGTERM)
        self.exit_on_zero = exit_on_zero_active_connections
        self.minimum_drain_duration = minimum_drain_duration
        self.envoy_drain_duration = envoy_drain_duration  # drainDuration: --drain-time-s
        if mode not in ("native", "classic"):
            raise ValueError(f"sidecar mode {mode!r} is not native or classic")
        self.mode = mode
        self.drained = False  # native: the preStop drain ran (SIGTERM then exits at once)
        self._emit = emit
        self._reaper = reaper
        self._on_change = on_change
        self.envoy: EnvoyProcess | None = None
        self.ready = False
        self.terminating = False
        self.restarts = 0
        self.error: Exception | None = None  # why the last restart failed (None: running)
        self.envoy_bin = envoy_bin
        self._backoff = CrashBackoff(scale=backoff_scale)
        self._running_since = time.monotonic()
        self._watch: asyncio.Task[None] | None = None

    @property
    def obj(self) -> str:
        return f"proxy/{self.pod}-sidecar"

    @property
    def alive(self) -> bool:
        return self.envoy is not None and self.envoy.alive

    @property
    def admin_port(self) -> int | None:
        return self.envoy.admin_port if self.envoy is not None else None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        envoy = EnvoyProcess(
            self.workdir,
            name=f"{self.pod}-sidecar",
            drain_time_s=max(self.envoy_drain_duration, 1.0),
            envoy_bin=self.envoy_bin,
        )
        self.envoy = envoy
        await envoy.start(
            initial=sidecar_snapshot(self.pod_port, self.app_port, pod=self.pod), timeout=20.0
        )
        self._running_since = time.monotonic()
        if self._reaper is not None and envoy.pid:
            self._reaper.watch(envoy.pid)
        self.ready = True
        self._on_change()
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_exit(), name=f"{self.pod}-sidecar-watch")

    async def _watch_exit(self) -> None:
        """Restart the proxy if it dies on its own (not while the pod terminates), like the
        kubelet restarts a crashed container: the pod is not ready meanwhile, the container's
        ``restarts`` goes up, and a restart that fails (its port taken, say) is retried with
        the crash back-off, the reason kept in ``error`` and shown in an event."""
        while not self.terminating:
            await asyncio.sleep(WATCH_SECONDS)
            if self.terminating or self.envoy is None or self.envoy.alive:
                continue
            self.ready = False
            self._on_change()
            code, pid = self.envoy.returncode, self.envoy.pid
            self._emit(
                EventKind.PROXY_CRASHED,
                self.obj,
                f"sidecar Envoy (pid {pid}) exited with {code}",
                {"pod": self.pod, "returncode": code, "pid": pid},
            )
            if self._reaper is not None and pid:
                self._reaper.unwatch(pid)
            delay = self._backoff.next_delay(time.monotonic() - self._running_since)
            started = await restart_with_backoff(
                self.start, self._backoff, delay, stopping=lambda: self.terminating,
                failed=self._restart_failed,
            )  # fmt: skip
            if not started or self.terminating:
                return
            self.error = None
            self.restarts += 1
            self._emit(
                EventKind.PROXY_RESTARTED,
                self.obj,
                f"sidecar Envoy restarted (pid {self.envoy.pid}, restart {self.restarts})",
                {"pod": self.pod, "container": "istio-proxy", "restarts": self.restarts},
            )

    def _restart_failed(self, exc: Exception, delay: float) -> None:
        self.error = exc
        report_restart_failure(self._emit, self.obj, "sidecar restart", exc, delay, pod=self.pod)

    def _stop_watching(self) -> None:
        self.terminating = True
        if self._watch is not None:
            self._watch.cancel()

    def _data(self, **data: Any) -> dict[str, Any]:
        return {"pod": self.pod, "container": "istio-proxy", "sidecar_mode": self.mode, **data}

    async def pre_stop(self) -> None:
        """Native sidecar's ``preStop`` (``pilot-agent request POST drain``), run at deletion
        with the app's preStop: drain the listeners (``Connection: close`` on responses; new
        connections go elsewhere), keep Envoy up, and exit at once at the later SIGTERM."""
        self._stop_watching()
        envoy = self.envoy
        if envoy is None or not envoy.alive:
            return
        self._emit(
            EventKind.SIDECAR_DRAIN_STARTED,
            self.obj,
            "preStop of native istio-proxy: pilot-agent drain; Envoy keeps serving until "
            "SIGTERM, which comes after the app container exited",
            self._data(mode="native", trigger="preStop", drain_duration=0.0),
        )
        with contextlib.suppress(Exception):
            await envoy.drain_listeners(graceful=True, inbound_only=True)
        self.drained = True

    async def terminate(self, deadline: float) -> None:
        """SIGTERM to istio-proxy. Native, after its preStop drain: exit at once. Classic
        (pilot-agent on SIGTERM): drain, wait, stop Envoy (SIGKILL at the grace deadline)."""
        self._stop_watching()
        envoy = self.envoy
        if envoy is None or not envoy.alive:
            return
        if self.drained:
            await self._exit(envoy, killed=False, why="SIGTERM after the app container exited")
            return
        mode = "exit-on-zero-active-connections" if self.exit_on_zero else "drain-duration"
        self._emit(
            EventKind.SIDECAR_DRAIN_STARTED,
            self.obj,
            f"SIGTERM to istio-proxy: draining ({mode}, {self.drain_duration:g}s)",
            self._data(mode=mode, trigger="SIGTERM", drain_duration=self.drain_duration),
        )
        with contextlib.suppress(Exception):
            await envoy.drain_listeners(graceful=True)
        if self.exit_on_zero:
            await _sleep_until(min(time.monotonic() + self.minimum_drain_duration, deadline))
            while time.monotonic() < deadline and envoy.alive:
                try:
                    connections, _ = await envoy.active()
                except Exception:
                    break
                if connections <= 0:
                    break
                await _sleep_until(min(time.monotonic() + 1.0, deadline))
        else:
            await _sleep_until(min(time.monotonic() + self.drain_duration, deadline))
        killed = time.monotonic() >= deadline
        await self._exit(
            envoy,
            killed=killed,
            why="SIGKILL at the grace deadline" if killed else "Envoy stopped after the drain",
        )

    async def _exit(self, envoy: EnvoyProcess, *, killed: bool, why: str) -> None:
        cut = 0
        with contextlib.suppress(Exception):
            if envoy.alive:
                cut = (await envoy.active())[1]
        await envoy.stop(graceful=False)
        if self._reaper is not None and envoy.pid:
            self._reaper.unwatch(envoy.pid)
        self.ready = False
        self._on_change()
        self._emit(
            EventKind.SIDECAR_EXITED,
            self.obj,
            why + (f"; {cut} request(s) in flight were cut" if cut else ""),
            self._data(requests_cut=cut, killed=killed),
        )

    async def kill(self) -> None:
        """Immediate stop (cluster close): no drain."""
        self._stop_watching()
        if self.envoy is not None:
            with contextlib.suppress(Exception):
                await self.envoy.stop(graceful=False)
            if self._reaper is not None and self.envoy.pid:
                self._reaper.unwatch(self.envoy.pid)
        self.ready = False


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _drain_duration(
    template: PodTemplate, default: float, key: str = "terminationDrainDuration"
) -> float:
    """``proxy.istio.io/config: {terminationDrainDuration: 5s}`` overrides the cluster default."""
    return _seconds(template.proxy_config().get(key), default)


def _seconds(raw: Any, default: float) -> float:
    if raw is None:
        return default
    from lab_app.manifests import parse_duration

    try:
        return float(parse_duration(raw))
    except Exception:
        return default


def sidecar_settings(template: PodTemplate, options: KubeletOptions) -> dict[str, Any]:
    """The pod's ``proxy.istio.io/config`` (ProxyConfig) over the cluster's defaults:
    ``terminationDrainDuration``, ``drainDuration`` (Envoy's ``--drain-time-s``) and
    ``proxyMetadata`` ``EXIT_ON_ZERO_ACTIVE_CONNECTIONS`` / ``MINIMUM_DRAIN_DURATION``."""
    config = template.proxy_config()
    meta = config.get("proxyMetadata")
    meta = meta if isinstance(meta, Mapping) else {}
    exit_on_zero = options.exit_on_zero_active_connections
    if "EXIT_ON_ZERO_ACTIVE_CONNECTIONS" in meta:
        exit_on_zero = str(meta["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"]).strip().lower() == "true"
    return {
        "drain_duration": _drain_duration(template, options.sidecar_drain),
        "envoy_drain_duration": _drain_duration(
            template, options.sidecar_envoy_drain, "drainDuration"
        ),
        "exit_on_zero_active_connections": exit_on_zero,
        "minimum_drain_duration": _seconds(
            meta.get("MINIMUM_DRAIN_DURATION"), options.minimum_drain_duration
        ),
    }
