"""One pod as the kubelet runs it: a real process, probes, hooks, termination, restarts.

Why each piece exists (they are the mechanisms the lab is about):

* **Readiness** decides whether the pod is an endpoint; without a readiness probe a pod is
  ready as soon as its process runs (before the app listens), as in Kubernetes.
* **Termination** follows the kubelet: deletion marks the pod terminating (the endpoints
  controller drops it, and the proxies learn it *later*), then ``preStop`` runs, then SIGTERM,
  then SIGKILL when ``terminationGracePeriodSeconds`` (which includes the preStop time) runs
  out -- but at least 2 s after SIGTERM (the kubelet's ``minimumGracePeriodInSeconds``). A
  classic Istio sidecar gets its SIGTERM at the same moment as the app's preStop starts; a
  native one runs its own preStop (drain) then and gets SIGTERM after the app container exited.
* **Memory limit**: the stand-in for the kernel's cgroup limit (here: psutil, every 0.05 s)
  SIGKILLs a container whose RSS crosses ``resources.limits.memory`` -> reason ``OOMKilled``,
  exit 137. That is the only way to ``OOMKilled``: a container that dies of a SIGKILL the
  kubelet did not send (it killed itself, someone ran ``kill -9``) is reason ``Error``, exit
  137, as on a real node.
* **Restarts** (restartPolicy Always) use the kubelet's crash back-off: the first restart is
  immediate, then 10 s, doubling up to 300 s, reset after 10 minutes of running. The
  ``backoff_scale`` option shrinks these for tests.

Each pod's app listens on its own free loopback port; with a sidecar, the sidecar owns the
pod's port (the endpoint) and forwards to the app's port.

The pieces with a seam of their own: ``termination.py`` (preStop, SIGTERM, SIGKILL),
``exits.py`` (the memory-limit watch, exit reasons, termination messages), ``podenv.py``
(env + envFrom), ``probes.py`` (one probe), ``sidecar.py`` (istio-proxy and its ProxyConfig).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_app.cluster.base import PodInfo
from lab_app.cluster.embedded import probes
from lab_app.cluster.embedded.exits import exit_status, last_log_line, watch_memory
from lab_app.cluster.embedded.images import Image
from lab_app.cluster.embedded.podenv import ContainerConfigError, base_environment, resolve_env
from lab_app.cluster.embedded.procs import Reaper, kill_group, spawn
from lab_app.cluster.embedded.sidecar import Sidecar, sidecar_settings
from lab_app.cluster.embedded.specs import PodTemplate, Probe
from lab_app.cluster.embedded.termination import MINIMUM_GRACE_PERIOD, stop_container
from lab_app.cluster.embedded.waiting import wait_done, wait_event
from lab_app.cluster.events import EventKind
from lab_app.service.cli import command as service_command

__all__ = [  # the env resolution moved to podenv.py; these names stay importable from here
    "MINIMUM_GRACE_PERIOD",
    "ContainerConfigError",
    "KubeletOptions",
    "Pod",
    "base_environment",
    "free_port",
    "resolve_env",
]

Emit = Callable[..., Any]
BACKOFF_RESET_AFTER = 600.0


@dataclass
class KubeletOptions:
    """Knobs of the embedded kubelet (``EmbeddedCluster.start`` passes them through)."""

    namespace: str = "zdlab"
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    backoff_scale: float = 1.0  # < 1 in tests: crash back-off seconds are multiplied by it
    oom_poll_seconds: float = 0.05  # the memory-limit watch (a /proc read per container)
    sidecar_drain: float = 5.0
    exit_on_zero_active_connections: bool = False
    minimum_drain_duration: float = 5.0
    sidecar_envoy_drain: float = 45.0  # ProxyConfig drainDuration: Envoy's --drain-time-s
    envoy_bin: str | Path | None = None  # the sidecars' Envoy (None: find_envoy())


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the pod's 'IP' is loopback; each pod has its own port)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pod:
    """A pod: app container process (+ optional sidecar) driven by its own asyncio task."""

    def __init__(
        self,
        *,
        name: str,
        template: PodTemplate,
        image: Image,
        deployment: str,
        rs_hash: str,
        workdir: Path,
        options: KubeletOptions,
        emit: Emit,
        on_change: Callable[[], None],
        env_resolver: Callable[[Pod], dict[str, str]],
        reaper: Reaper | None,
        inject_sidecar: bool,
        sidecar_mode: str = "classic",
        minimum_grace_period: float = MINIMUM_GRACE_PERIOD,
    ) -> None:
        self.name = name
        self.template = template
        self.image = image
        self.deployment = deployment
        self.rs_hash = rs_hash
        self.labels = {**template.labels, "pod-template-hash": rs_hash}
        self.workdir = workdir
        self.opts = options
        self._emit_fn = emit
        self._on_change = on_change
        self._env_resolver = env_resolver
        self._reaper = reaper
        self.created = time.time()
        self.app_port = free_port()
        self.pod_port = self.app_port
        self.sidecar: Sidecar | None = None
        self.minimum_grace_period = float(minimum_grace_period)
        if inject_sidecar:
            self.pod_port = free_port()
            self.sidecar = Sidecar(
                pod=name,
                pod_port=self.pod_port,
                app_port=self.app_port,
                workdir=workdir / "sidecar",
                emit=emit,
                reaper=reaper,
                mode=sidecar_mode,
                **sidecar_settings(template, options),
                on_change=self._changed,
                envoy_bin=options.envoy_bin,
                backoff_scale=options.backoff_scale,
            )
        self.proc: asyncio.subprocess.Process | None = None
        self.phase = "Pending"
        self.state = "waiting"  # waiting | running | terminated
        self.reason = "ContainerCreating"
        self.app_ready = False
        self.started = False  # startup probe passed (or none)
        self.ready_since: float | None = None
        self.restarts = 0
        self.last_state = ""
        self.last_exit_code: int | None = None
        self.last_message = ""  # the log's last line after a failure (FallbackToLogsOnError)
        self.terminating = False
        self.deletion_started: float | None = None
        self.deleted = False
        self._container_started_mono = 0.0
        self._log_offset = 0
        self._oom_killed_by_kubelet = False
        self._killing = False  # a liveness/startup kill is in progress
        self._kill_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._container_tasks: list[asyncio.Task[Any]] = []
        self._termination: asyncio.Task[None] | None = None
        self.deleted_event = asyncio.Event()

    # ------------------------------------------------------------------ status

    @property
    def obj(self) -> str:
        return f"pod/{self.name}"

    @property
    def ready(self) -> bool:
        sidecar_ok = self.sidecar is None or self.sidecar.ready
        return self.app_ready and sidecar_ok and self.state == "running"

    def log_path(self, restart: int | None = None) -> Path:
        """The log of the container run after ``restart`` restarts (default: the current one)."""
        return self.workdir / f"app-{self.restarts if restart is None else restart}.log"

    def info(self) -> PodInfo:
        phase = "Terminating" if self.terminating else self.phase
        return PodInfo(
            name=self.name,
            labels=dict(self.labels),
            phase=phase,
            ready=self.ready,
            restarts=self.restarts,
            image=self.image.ref,
            deployment=self.deployment,
            ip="127.0.0.1",
            port=self.pod_port,
            pid=self.proc.pid if self.proc is not None and self.proc.returncode is None else None,
            sidecar=self.sidecar is not None,
            last_state=self.last_state,
            extra={
                # "native" | "classic" | None (no sidecar)
                "sidecar_mode": self.sidecar.mode if self.sidecar else None,
                "app_port": self.app_port,
                "state": self.state,
                "reason": self.reason,
                "created": self.created,
                "ready_since": self.ready_since,
                "image_short": self.image.short,
                "sidecar_pid": (
                    self.sidecar.envoy.pid if self.sidecar and self.sidecar.envoy else None
                ),
                "sidecar_admin_port": self.sidecar.admin_port if self.sidecar else None,
                "last_exit_code": self.last_exit_code,
                "last_message": self.last_message,
                # per container, as the kubernetes backend reports them (restartCount each)
                "containers": self._containers(),
            },
        )

    def _containers(self) -> dict[str, dict[str, Any]]:
        out = {
            self.template.container.name: {
                "ready": self.app_ready and self.state == "running",
                "restarts": self.restarts,
                "state": self.state,
            }
        }
        if self.sidecar is not None:
            out["istio-proxy"] = {
                "ready": self.sidecar.ready,
                "restarts": self.sidecar.restarts,
                "state": "running" if self.sidecar.alive else "terminated",
                # native: an init container with restartPolicy Always (a Kubernetes sidecar)
                "sidecar_mode": self.sidecar.mode,
            }
        return out

    def _emit(self, kind: EventKind, message: str = "", **data: Any) -> None:
        self._emit_fn(kind, self.obj, message, {"pod": self.name, **data})

    def _changed(self) -> None:
        ready = self.ready
        if ready and self.ready_since is None:
            self.ready_since = time.time()
        elif not ready:
            self.ready_since = None
        self._on_change()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._emit(
            EventKind.POD_CREATED,
            f"image {self.image.short}"
            + (f" + istio-proxy ({self.sidecar.mode} sidecar)" if self.sidecar else ""),
            image=self.image.ref,
            deployment=self.deployment,
            port=self.pod_port,
            sidecar_mode=self.sidecar.mode if self.sidecar else None,
        )
        self._main = asyncio.create_task(self._run(), name=f"pod-{self.name}")

    async def _run(self) -> None:
        try:
            if self.sidecar is not None:
                # native: the init container starts, and must be ready (its startup probe),
                # before the app container starts; classic: the lab starts it first too
                try:
                    await self.sidecar.start()
                except Exception as exc:
                    self.reason = "SidecarFailed"
                    self._emit(EventKind.PROXY_CRASHED, f"sidecar did not start: {exc}")
                    raise
                self._emit(
                    EventKind.NOTE,
                    f"istio-proxy ready ({self.sidecar.mode} sidecar), starting the app container",
                    reason="SidecarReady",
                    container="istio-proxy",
                    sidecar_mode=self.sidecar.mode,
                )
            backoff_step = 0
            while not self.terminating:
                try:
                    env = self._env_resolver(self)
                except ContainerConfigError as exc:
                    if self.reason != "CreateContainerConfigError":
                        self.reason = "CreateContainerConfigError"
                        self._emit(EventKind.NOTE, f"CreateContainerConfigError: {exc}")
                        self._changed()
                    await self._wait_wakeup(1.0)
                    continue
                ran_for = await self._run_container(env)
                if self.terminating:
                    break
                if ran_for >= BACKOFF_RESET_AFTER:
                    backoff_step = 0
                delay = 0.0
                if backoff_step > 0:
                    delay = min(
                        self.opts.backoff_base * 2 ** (backoff_step - 1), self.opts.backoff_max
                    )
                    delay *= self.opts.backoff_scale
                backoff_step += 1
                if delay > 0:
                    self.reason = "CrashLoopBackOff"
                    self._emit(
                        EventKind.NOTE,
                        f"Back-off {delay:g}s restarting failed container",
                        backoff_seconds=delay,
                    )
                    self._changed()
                    await self._wait_wakeup(delay)
                if self.terminating:
                    break
                self.restarts += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the lab alive; the pod shows the failure
            self.reason = f"Error: {exc}"
            self._emit(EventKind.NOTE, f"kubelet error: {exc!r}")

    async def _wait_wakeup(self, timeout: float) -> None:
        self._wakeup.clear()
        await wait_event(self._wakeup, timeout)

    def wake(self) -> None:
        self._wakeup.set()

    async def _run_container(self, env: dict[str, str]) -> float:
        """Start the app process, watch it until it exits; returns how long it ran."""
        log = self.log_path()
        log.touch()
        self._log_offset = log.stat().st_size
        argv = service_command(self.app_port)
        self._oom_killed_by_kubelet = False
        self.proc = await spawn(
            argv, env=env, cwd=self.image.root, log_path=log, reaper=self._reaper
        )
        if self.terminating:  # deleted while the container was being created
            kill_group(self.proc.pid, signal.SIGKILL)
        started = time.monotonic()
        self._container_started_mono = started
        self.phase, self.state, self.reason = "Running", "running", ""
        self.started = self.template.container.startup is None
        self.app_ready = False
        if self.restarts:
            self._emit(
                EventKind.RESTARTED, f"container restarted ({self.restarts})", pid=self.proc.pid
            )
        self._emit(EventKind.POD_STARTED, f"pid {self.proc.pid}", pid=self.proc.pid)
        c = self.template.container
        if c.readiness is None and c.startup is None:
            self.app_ready = True  # no readiness probe: ready as soon as the process runs
        self._changed()
        tasks = []
        if c.startup is not None:
            tasks.append(self._probe_loop("startup", c.startup))
        else:
            tasks += self._post_startup_probes()
        if c.memory_limit:
            limit = c.memory_limit
            watch = watch_memory(
                self.proc,
                limit,
                self.opts.oom_poll_seconds,
                lambda rss: self._over_memory_limit(rss, limit),
            )
            tasks.append(asyncio.create_task(watch))
        self._container_tasks = tasks
        returncode = await self.proc.wait()
        ran_for = time.monotonic() - started
        for t in self._container_tasks:
            t.cancel()
        self._container_tasks = []
        if self._reaper is not None:
            self._reaper.unwatch(self.proc.pid)
        self.app_ready = False
        self.state = "terminated"
        self._record_exit(returncode, log)
        self._changed()
        return ran_for

    def _post_startup_probes(self) -> list[asyncio.Task[Any]]:
        c = self.template.container
        tasks = []
        if c.readiness is not None:
            tasks.append(self._probe_loop("readiness", c.readiness))
        else:
            self.app_ready = True
        if c.liveness is not None:
            tasks.append(self._probe_loop("liveness", c.liveness))
        return tasks

    def _record_exit(self, returncode: int, log: Path) -> None:
        status = exit_status(returncode, self._oom_killed_by_kubelet)
        exit_code, sig, reason = status.exit_code, status.signal, status.reason
        if reason == "OOMKilled":
            self._emit(
                EventKind.OOM_KILLED,
                "container exceeded its memory limit (killed at the limit)",
                exit_code=exit_code,
            )
        # like terminationMessagePolicy FallbackToLogsOnError (see exits.py)
        message = last_log_line(log, self._log_offset) if reason == "Error" and not sig else ""
        self.last_state = reason
        self.last_exit_code = exit_code
        self.last_message = message
        self.reason = reason
        self._emit(
            EventKind.CONTAINER_EXITED,
            f"exit code {exit_code} ({reason})"
            + (" during termination" if self.terminating else "")
            + (f": {message}" if message else ""),
            exit_code=exit_code,
            reason=reason,
            signal=sig or None,
            termination_message=message,
        )

    def _probe_loop(self, kind: str, probe: Probe) -> asyncio.Task[None]:
        return asyncio.create_task(self._probe(kind, probe), name=f"{self.name}-{kind}")

    async def _probe(self, kind: str, probe: Probe) -> None:
        port = self.app_port  # the container's (only) port, whatever its number in the manifest
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            started = time.monotonic()
            ok, why = await probes.run_handler(probe.handler, port, probe.timeout)
            if self.proc is None or self.proc.returncode is not None:
                return
            if ok:
                successes, failures = successes + 1, 0
                if kind == "readiness" and not self.app_ready:
                    if successes >= probe.success_threshold:
                        self.app_ready = True
                        self._emit(EventKind.POD_READY, "readiness probe passed")
                        self._changed()
                elif kind == "startup" and not self.started:
                    self.started = True
                    self._container_tasks += self._post_startup_probes()
                    if self.app_ready:
                        self._changed()
                    return
            else:
                successes, failures = 0, failures + 1
                self._emit(
                    EventKind.PROBE_FAILED,
                    f"{kind} probe failed: {why}",
                    probe=kind,
                    reason=why,
                    failures=failures,
                )
                if failures >= probe.failure_threshold:
                    if kind == "readiness" and self.app_ready:
                        self.app_ready = False
                        self._emit(EventKind.POD_NOT_READY, f"readiness probe failed {failures}x")
                        self._changed()
                    elif kind in ("liveness", "startup") and not self.terminating:
                        self._emit(
                            EventKind.NOTE,
                            f"{kind} probe failed {failures}x: container will be restarted",
                        )
                        self._kill_task = asyncio.create_task(
                            self._kill_container(f"{kind} probe failed")
                        )
                        return
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, probe.period - elapsed))

    def _over_memory_limit(self, rss: int, limit: int) -> None:
        """``exits.watch_memory`` saw the limit crossed: the kernel's OOM kill, by the lab."""
        assert self.proc is not None
        self._oom_killed_by_kubelet = True
        self._emit(
            EventKind.SIGKILL,
            f"memory {rss / 2**20:.0f}Mi over limit {limit / 2**20:.0f}Mi",
            rss=rss,
            limit=limit,
        )
        kill_group(self.proc.pid, signal.SIGKILL)

    async def _kill_container(self, why: str) -> None:
        """Liveness/startup failure: preStop, SIGTERM, SIGKILL after the grace period."""
        if self._killing or self.proc is None or self.proc.returncode is not None:
            return
        self._killing = True
        try:
            deadline = time.monotonic() + self.template.termination_grace
            await self._stop_app(deadline, why)
        finally:
            self._killing = False

    async def _stop_app(self, deadline: float, why: str) -> None:
        """The kubelet's killContainer for the app (``termination.stop_container``)."""
        await stop_container(
            current=lambda: self.proc,
            pre_stop=self.template.container.pre_stop,
            app_port=self.app_port,
            deadline=deadline,
            minimum_grace_period=self.minimum_grace_period,
            termination_grace=self.template.termination_grace,
            why=why,
            emit=self._emit,
        )

    def terminate(self, grace: float | None = None) -> asyncio.Task[None]:
        """Start deleting the pod (idempotent); the task ends when the pod is gone."""
        if self._termination is None:
            self._termination = asyncio.create_task(
                self._terminate(self.template.termination_grace if grace is None else grace),
                name=f"terminate-{self.name}",
            )
        return self._termination

    async def _terminate(self, grace: float) -> None:
        self.terminating = True
        self.deletion_started = time.time()
        deadline = time.monotonic() + grace
        self._emit(
            EventKind.POD_TERMINATING,
            f"deletion started (grace {grace:g}s)",
            grace=grace,
        )
        self._changed()
        self.wake()
        # the app container's preStop + SIGTERM run alongside the sidecar's part: a classic
        # istio-proxy gets SIGTERM now; a native one runs its preStop (pilot-agent drain) now
        # and gets SIGTERM only after the app container exited
        sidecar = self.sidecar
        native = sidecar is not None and sidecar.mode == "native"
        jobs = [asyncio.create_task(self._stop_app(deadline, "pod deletion"))]
        if sidecar is not None:
            work = sidecar.pre_stop() if native else sidecar.terminate(deadline)
            jobs.append(asyncio.create_task(work))
        try:
            await asyncio.gather(*jobs)
            if self._main is not None:
                await wait_done(asyncio.shield(self._main), 5.0)
            if native and sidecar is not None:
                await sidecar.terminate(max(deadline, time.monotonic() + self.minimum_grace_period))
        finally:
            if self._main is not None and not self._main.done():
                self._main.cancel()
            self.deleted = True
            self.phase = "Succeeded"
            self._emit(EventKind.POD_DELETED, "pod removed")
            self.deleted_event.set()
            self._on_change()

    async def kill(self) -> None:
        """Immediate stop for ``close()``: SIGKILL the app, stop the sidecar, no hooks."""
        self.terminating = True
        for t in self._container_tasks:
            t.cancel()
        if self._termination is not None and not self._termination.done():
            self._termination.cancel()
        if self._main is not None and not self._main.done():
            self._main.cancel()
        if self.proc is not None and self.proc.returncode is None:
            kill_group(self.proc.pid, signal.SIGKILL)
            await wait_done(self.proc.wait(), 5.0)
        if self.proc is not None and self._reaper is not None:
            self._reaper.unwatch(self.proc.pid)
        if self.sidecar is not None:
            await self.sidecar.kill()
        for task in (self._main, self._termination):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        self.deleted = True
        self.deleted_event.set()
