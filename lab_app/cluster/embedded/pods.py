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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lab_app.cluster.base import PodInfo
from lab_app.cluster.embedded import probes
from lab_app.cluster.embedded.images import Image
from lab_app.cluster.embedded.procs import Reaper, kill_group, spawn
from lab_app.cluster.embedded.sidecar import Sidecar
from lab_app.cluster.embedded.specs import PodTemplate, Probe
from lab_app.cluster.embedded.waiting import wait_done, wait_event
from lab_app.cluster.events import EventKind

Emit = Callable[..., Any]
BACKOFF_RESET_AFTER = 600.0
MINIMUM_GRACE_PERIOD = 2.0  # kuberuntime_container.go minimumGracePeriodInSeconds


class ContainerConfigError(Exception):
    """The pod cannot start yet (a missing ConfigMap): Kubernetes' CreateContainerConfigError."""


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
                **_sidecar_settings(template, options),
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
        argv = [
            sys.executable,
            "-m",
            "lab_app.service",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.app_port),
        ]
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
            tasks.append(asyncio.create_task(self._oom_watch(c.memory_limit)))
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
        sig = -returncode if returncode < 0 else 0
        exit_code = 128 + sig if sig else returncode
        # OOMKilled only when the memory-limit watch sent the SIGKILL (the kernel's cgroup OOM
        # killer on a node); any other death by signal, SIGKILL included, is Error (128+n)
        if self._oom_killed_by_kubelet and sig == signal.SIGKILL:
            reason = "OOMKilled"
            self._emit(
                EventKind.OOM_KILLED,
                "container exceeded its memory limit (killed at the limit)",
                exit_code=exit_code,
            )
        elif exit_code == 0:
            reason = "Completed"
        else:
            reason = "Error"
        # like terminationMessagePolicy FallbackToLogsOnError: an app that exits with an error
        # status (not a signal) usually said why on its last line, e.g. a port already in use
        message = _last_log_line(log, self._log_offset) if reason == "Error" and not sig else ""
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

    async def _oom_watch(self, limit: int) -> None:
        """The cgroup memory limit: SIGKILL the container once its RSS (the process and its
        children, as a cgroup counts them) goes over ``limit`` bytes."""
        assert self.proc is not None
        try:
            ps = psutil.Process(self.proc.pid)
        except psutil.Error:
            return
        while self.proc.returncode is None:
            try:
                rss = ps.memory_info().rss
                for child in ps.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
            except psutil.Error:
                return
            if rss > limit and self.proc.returncode is None:
                self._oom_killed_by_kubelet = True
                self._emit(
                    EventKind.SIGKILL,
                    f"memory {rss / 2**20:.0f}Mi over limit {limit / 2**20:.0f}Mi",
                    rss=rss,
                    limit=limit,
                )
                kill_group(self.proc.pid, signal.SIGKILL)
                return
            await asyncio.sleep(self.opts.oom_poll_seconds)

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
        """The kubelet's killContainer for the app: preStop, then SIGTERM, then SIGKILL."""
        pre = self.template.container.pre_stop
        proc = self.proc
        if pre is not None and proc is not None and proc.returncode is None:
            self._emit(
                EventKind.PRESTOP_STARTED,
                f"preStop sleep {pre.sleep_seconds:g}s"
                if not pre.http
                else f"preStop GET {pre.http.path}",
            )
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    if pre.http is not None:
                        await probes.http_get(
                            self.app_port,
                            pre.http.path,
                            timeout=max(0.1, deadline - time.monotonic()),
                        )
                    else:
                        await _wait_or_exit(proc, pre.sleep_seconds)
                self._emit(EventKind.PRESTOP_FINISHED, "preStop hook finished")
            except TimeoutError:
                self._emit(EventKind.PRESTOP_FINISHED, "preStop hook cut by the grace period")
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        # killContainer: whatever preStop used, SIGTERM gets at least minimumGracePeriodInSeconds
        kill_at = max(deadline, time.monotonic() + self.minimum_grace_period)
        extended = kill_at > deadline
        self._emit(
            EventKind.SIGTERM,
            why
            + (
                f" (grace period used up: the kubelet's {self.minimum_grace_period:g}s minimum)"
                if extended
                else ""
            ),
            pid=proc.pid,
            seconds_to_sigkill=round(kill_at - time.monotonic(), 3),
        )
        _sigterm_once(proc.pid)
        if not await wait_done(proc.wait(), kill_at - time.monotonic()):
            self._emit(
                EventKind.SIGKILL,
                f"still running after terminationGracePeriodSeconds="
                f"{self.template.termination_grace:g}"
                + (f" and the {self.minimum_grace_period:g}s minimum" if extended else ""),
                pid=proc.pid,
            )
            kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()

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


def _sigterm_once(pid: int) -> None:
    """One SIGTERM to the container (its process group), as the runtime sends it. Not
    ``kill_group``: that signals the group *and* the leader, and a second SIGTERM tells a
    graceful app to hurry (the lab's service then cuts what is in flight)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


async def _wait_or_exit(proc: asyncio.subprocess.Process, seconds: float) -> None:
    """Sleep ``seconds`` but stop early if the container exits meanwhile."""
    await wait_done(proc.wait(), seconds)


def _last_log_line(log: Path, offset: int, limit: int = 300) -> str:
    """The last non-empty line the container wrote (at most ``limit`` characters)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(offset, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:limit]
    return ""


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


def _sidecar_settings(template: PodTemplate, options: KubeletOptions) -> dict[str, Any]:
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


def base_environment(pod: Pod) -> dict[str, str]:
    """What every container gets before the manifest's env: a clean, container-like env."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(pod.workdir),
        "TMPDIR": str(pod.workdir),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOSTNAME": pod.name,
        "PYTHONPATH": str(pod.image.root),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    return env


def resolve_env(
    pod: Pod,
    configmaps: Mapping[str, Mapping[str, Any]],
    namespace: str,
) -> dict[str, str]:
    """env + envFrom as the kubelet resolves them (raises ContainerConfigError if missing)."""
    env = base_environment(pod)
    c = pod.template.container
    for item in c.env_from:
        ref = item.get("configMapRef")
        if ref is None:
            raise ContainerConfigError(f"envFrom {dict(item)} is not supported (only configMapRef)")
        cm = configmaps.get(ref.get("name", ""))
        if cm is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'configmap "{ref.get("name")}" not found')
        prefix = str(item.get("prefix", ""))
        for k, v in (cm.get("data") or {}).items():
            env[prefix + str(k)] = str(v)
    for item in c.env:
        name = str(item["name"])
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath")
            env[name] = {
                "metadata.name": pod.name,
                "metadata.namespace": namespace,
                "metadata.uid": pod.name,
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
                "spec.nodeName": "zdlab-embedded",
                "spec.serviceAccountName": "default",
            }.get(path, "")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            cm = configmaps.get(ref.get("name", ""))
            value = (cm.get("data") or {}).get(ref.get("key")) if cm else None
            if value is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f'configmap "{ref.get("name")}" key "{ref.get("key")}" not found'
                )
            env[name] = str(value)
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            if ref.get("resource") == "limits.memory" and c.memory_limit:
                from lab_app.manifests import parse_quantity

                divisor = float(parse_quantity(ref.get("divisor", 1)) or 1)
                env[name] = str(int(-(-c.memory_limit // divisor)))
            else:
                env[name] = "0"
        else:
            env[name] = ""
    return env
