"""One real Envoy process: the embedded backend's gateway, a sidecar or the kube-proxy stand-in.

Each Envoy gets a working directory of its own holding its bootstrap, its xDS files (``xds/``),
its log (``envoy.log``) and its access log (``access.log``), so several run side by side and a
learner can open the files. Flags: ``--disable-hot-restart`` (or a second Envoy on the machine
fails to start), ``--concurrency 1`` (one worker is plenty on loopback and keeps RSS and CPU
low), ``--file-flush-interval-msec 100`` (Envoy flushes its log files every 10 s by default,
too late for a rejection reason or a live access-log view), ``--reject-unknown-dynamic-fields``
(by default Envoy only counts unknown fields in pushed config and runs without them).

No Envoy outlives its owner:

- the child asks the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  Linux). The signal fires when the *thread* that forked exits, so every Envoy is forked from
  one dedicated spawner thread that lives as long as the interpreter (an event loop running
  in a short-lived thread would otherwise take its Envoys with it);
- every pid is recorded; ``kill_all_envoys()`` (also registered with ``atexit``) kills those
  still running;
- ``start_new_session=True`` keeps a terminal's Ctrl-C (SIGINT to the foreground process
  group) away from Envoy, so the owner decides the order of shutdown (a gateway must outlive
  the pods it drains).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_app.cluster.embedded.envoy.admin import EnvoyAdmin
from lab_app.cluster.embedded.envoy.binary import find_envoy
from lab_app.cluster.embedded.envoy.xds import PushResult, XdsPusher
from lab_app.errors import ConfigError, EnvoyNotFoundError, LabError, PortInUseError

if TYPE_CHECKING:
    from lab_app.cluster.proxyconfig import ProxyConfigKind, ProxyConfigView

FILE_FLUSH_MS = 100
PR_SET_PDEATHSIG = 1
_BIND_ERROR = re.compile(r"cannot bind '([^']*):(\d+)': Address already in use")

# --- pid registry and the spawner thread ---------------------------------------------------
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


def running_envoy_pids() -> set[int]:
    """Pids of Envoys this interpreter started that are still running."""
    with _LIVE_LOCK:
        for pid, proc in list(_LIVE.items()):
            if proc.poll() is not None:
                del _LIVE[pid]
        return set(_LIVE)


def kill_all_envoys() -> None:
    """SIGKILL every Envoy this interpreter started (last-resort cleanup, also at exit)."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
        _LIVE.clear()
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


atexit.register(kill_all_envoys)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved now, not in the child
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: keep it tiny
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


class _Spawner:
    """A thread that forks every Envoy, so PDEATHSIG is tied to a thread that never ends."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="zdlab-envoy-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fn, fut))
        return fut


_SPAWNER: _Spawner | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> _Spawner:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = _Spawner()
        return _SPAWNER


# --- bootstrap -------------------------------------------------------------------------------
def build_bootstrap(node_id: str, admin_port: int, xds: XdsPusher) -> dict[str, Any]:
    """A fully dynamic bootstrap: admin on 127.0.0.1, LDS and CDS from ``xds``'s files."""
    return {
        "node": {"id": node_id, "cluster": "zdlab"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "dynamic_resources": xds.dynamic_resources(),
        # An explicit connection limit; without it Envoy warns at every start.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 50000,
                    },
                }
            ]
        },
    }


class EnvoyProcess:
    """A real Envoy, configured through file-based xDS. See the module docstring.

    ``workdir`` is this Envoy's own directory (created if missing; its ``xds/`` is reset at
    each start). ``admin_port=0`` lets Envoy pick a free port (read back through
    ``--admin-address-path``, so there is no race with other programs). ``drain_time_s`` and
    ``drain_strategy`` are what pilot-agent passes (``terminationDrainDuration`` default 5 s,
    strategy ``immediate``).
    """

    def __init__(
        self,
        workdir: str | Path,
        *,
        name: str = "envoy",
        admin_port: int = 0,
        log_level: str = "warning",
        drain_time_s: float = 5,
        drain_strategy: str = "immediate",
        envoy_bin: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if drain_strategy not in ("immediate", "gradual"):
            raise ConfigError(f"drain_strategy {drain_strategy!r} is not immediate or gradual")
        if not 0 <= admin_port <= 65535:
            raise ConfigError(f"admin_port {admin_port} is not a port number")
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.requested_admin_port = admin_port
        self.log_level = log_level
        # Envoy takes whole seconds; round up so a drain is never shorter than asked.
        self.drain_time_s = max(0, math.ceil(drain_time_s))
        self.drain_strategy = drain_strategy
        self.envoy_bin = Path(envoy_bin) if envoy_bin else None
        self.extra_args = tuple(extra_args)
        self.bootstrap_path = self.workdir / "bootstrap.json"
        self.log_path = self.workdir / "envoy.log"
        self.stderr_path = self.workdir / "envoy.stderr"
        self.access_log_path = self.workdir / "access.log"
        self.admin_address_path = self.workdir / "admin-address.txt"
        self.xds = XdsPusher(
            self.workdir / "xds", log_path=self.log_path, access_log_path=self.access_log_path
        )
        self._admin: EnvoyAdmin | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None  # wall clock
        self.start_seconds: float | None = None  # spawn -> /ready

    # --- state -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def admin(self) -> EnvoyAdmin:
        if self._admin is None:
            raise LabError(f"Envoy {self.name} has not been started")
        return self._admin

    @property
    def admin_port(self) -> int:
        return self.admin.port

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.returncode}" if self._proc else "new"
        return f"<EnvoyProcess {self.name} pid={self.pid} {state} {self.workdir}>"

    # --- lifecycle -------------------------------------------------------------------------
    def _command(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "-c", str(self.bootstrap_path),
            "--disable-hot-restart",
            "--concurrency", "1",
            "--admin-address-path", str(self.admin_address_path),
            "--log-path", str(self.log_path),
            "--log-level", self.log_level,
            "--drain-time-s", str(self.drain_time_s),
            "--drain-strategy", self.drain_strategy,
            "--file-flush-interval-msec", str(FILE_FLUSH_MS),
            # a typo in pushed config must be a rejection, not a silently ignored field
            "--reject-unknown-dynamic-fields",
            *self.extra_args,
        ]  # fmt: skip

    def _spawn(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        """Runs in the spawner thread."""
        with self.stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),  # see the module docstring
                close_fds=True,
            )
        with _LIVE_LOCK:
            _LIVE[proc.pid] = proc
        return proc

    async def start(self, initial: Any = None, timeout: float = 15.0) -> None:
        """Start Envoy and wait for ``/ready``; then push ``initial`` (a ``Snapshot``) if given.

        Raises ``PortInUseError`` naming the port when the admin port or a listener port is
        taken, ``EnvoyNotFoundError`` without a binary, ``LabError`` with the log tail if Envoy
        exits or is not ready in time. On any error no Envoy is left running.
        """
        if self.alive:
            raise LabError(f"Envoy {self.name} is already running (pid {self.pid})")
        binary = self.envoy_bin or find_envoy()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise EnvoyNotFoundError(f"envoy_bin {binary} is not an executable file")
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.xds.root, ignore_errors=True)
        for path in (self.admin_address_path, self.log_path, self.stderr_path):
            path.unlink(missing_ok=True)
        if self._admin is not None:  # after a crash: the old admin client is still open
            with contextlib.suppress(Exception):
                await self._admin.aclose()
        self._admin = self.xds.admin = None  # a restart gets a new admin port
        self.xds.reset()
        self.xds.prepare()
        self.bootstrap_path.write_text(
            json.dumps(build_bootstrap(self.name, self.requested_admin_port, self.xds), indent=1)
        )
        t0 = time.perf_counter()
        fut = _spawner().submit(lambda: self._spawn(self._command(binary)))
        self._proc = await asyncio.wrap_future(fut)
        self.started_at = time.time()
        try:
            await self._wait_ready(timeout)
            self.start_seconds = time.perf_counter() - t0
            if initial is not None:
                result = await self.push(initial, timeout=min(timeout, 10.0))
                if not result.accepted:
                    if result.port_in_use is not None:
                        raise PortInUseError(
                            f"Envoy {self.name}: listener port {result.port_in_use} on "
                            "127.0.0.1 is already in use by another program"
                        )
                    raise LabError(
                        f"Envoy {self.name} rejected its initial configuration: "
                        + "; ".join(result.details)
                    )
        except BaseException:
            await self.stop(graceful=False)
            raise

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.returncode
            if code is not None:
                self._raise_start_failure(code)
            if self._admin is None and self.admin_address_path.exists():
                host, _, port = self.admin_address_path.read_text().strip().rpartition(":")
                if port.isdigit():  # else not completely written yet
                    self._admin = EnvoyAdmin(int(port), host=host or "127.0.0.1")
                    self.xds.admin = self._admin
            if self._admin is not None and await self._admin.ready():
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"Envoy {self.name} was not ready within {timeout:.0f}s; log tail:\n"
                    + self.log_tail(20)
                )
            await asyncio.sleep(0.01)

    def _raise_start_failure(self, code: int) -> None:
        tail = self.log_tail(20)
        m = _BIND_ERROR.search(tail)
        if m:
            port = int(m.group(2))
            what = "admin port" if port == self.requested_admin_port else "port"
            raise PortInUseError(
                f"Envoy {self.name}: {what} {port} on {m.group(1)} is already in use by another "
                "program (choose another port, or 0 for a free one)"
            )
        raise LabError(
            f"Envoy {self.name} exited with status {code} during start; log tail:\n{tail}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Envoy's log and stderr (what explains a failed start)."""
        out: list[str] = []
        for path in (self.log_path, self.stderr_path):
            with contextlib.suppress(OSError):
                out.extend(path.read_text(errors="replace").splitlines())
        return "\n".join(out[-lines:])

    async def wait(self, timeout: float | None = None, poll: float = 0.01) -> int:
        """Wait for the process to exit and return its status (``TimeoutError`` on timeout)."""
        if self._proc is None:
            raise LabError(f"Envoy {self.name} has not been started")
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self._proc.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Envoy {self.name} (pid {self.pid}) still running")
            await asyncio.sleep(poll)
        with _LIVE_LOCK:
            _LIVE.pop(self._proc.pid, None)
        return code

    def signal(self, sig: int) -> None:
        """Send a signal (e.g. SIGKILL to simulate a crash); no-op if it already exited."""
        if self.alive and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def drain_listeners(self, graceful: bool = True, inbound_only: bool = False) -> None:
        """What pilot-agent does on SIGTERM: ``POST /drain_listeners?graceful``.

        Listeners stop accepting after the drain time, HTTP/1 responses carry
        ``Connection: close`` during it (strategy ``immediate``: from the start).
        """
        params: dict[str, str] = {}
        if graceful:
            params["graceful"] = ""
        if inbound_only:
            params["inboundonly"] = ""
        await self.admin.post("/drain_listeners", params)

    async def active(self) -> tuple[int, int]:
        """(downstream connections open, requests in flight): EXIT_ON_ZERO_ACTIVE_CONNECTIONS."""
        return await self.admin.downstream_active()

    async def stop(self, graceful: bool = True, timeout: float = 5.0) -> int | None:
        """Stop Envoy; returns its exit status (None if it was never started).

        ``graceful``: drain listeners, wait until no downstream connection is open (at most
        ``drain_time_s``), then SIGTERM. Otherwise SIGTERM at once (Envoy closes every
        connection). SIGKILL if it has not exited ``timeout`` seconds after SIGTERM.
        """
        if self._proc is None:
            return None
        if self.alive and graceful and self._admin is not None:
            with contextlib.suppress(LabError):
                await self.drain_listeners(graceful=True)
                deadline = time.monotonic() + self.drain_time_s
                while time.monotonic() < deadline and self.alive:
                    cx, _ = await self.active()
                    if cx == 0:
                        break
                    await asyncio.sleep(0.05)
        self.signal(signal.SIGTERM)
        try:
            code = await self.wait(timeout)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            code = await self.wait(5.0)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.aclose()
        return code

    async def kill(self) -> int | None:
        """SIGKILL, like a crash or an OOM kill; returns the exit status."""
        if self._proc is None:
            return None
        self.signal(signal.SIGKILL)
        return await self.wait(5.0)

    # --- configuration ---------------------------------------------------------------------
    async def push(self, snapshot: Any, timeout: float = 5.0) -> PushResult:
        """Push a ``Snapshot`` through the xDS files; see ``XdsPusher.push``."""
        if not self.alive:
            state = "was never started" if self._proc is None else f"exited ({self.returncode})"
            raise LabError(f"cannot push to Envoy {self.name}: it {state}")
        return await self.xds.push(snapshot, timeout=timeout)

    async def proxy_config(self, kind: ProxyConfigKind = "routes") -> ProxyConfigView:
        """What ``istioctl proxy-config KIND`` shows for this Envoy (a ``ProxyConfigView``)."""
        from lab_app.cluster.proxyconfig import proxy_config_view

        if kind == "endpoints":
            return proxy_config_view(await self.admin.clusters(), kind)
        view = proxy_config_view(await self.admin.config_dump(), kind)
        if kind == "listeners":  # show the bound port of a listener configured with port 0
            bound = await self.admin.listener_addresses()
            for row in view.rows:
                if row.get("name") in bound:
                    row["PORT"] = bound[row["name"]][1]
        return view

    async def __aenter__(self) -> EnvoyProcess:
        if not self.alive:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(graceful=False)
