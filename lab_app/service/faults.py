"""The failure behaviours of the demo service: retry cycles, a memory leak, a "full GC" pause.

Why they exist: the original Spring Boot demo used them to show what Kubernetes and Istio do
when a pod misbehaves (retries on 503/409, an OOM-killed container, a JVM stuck in
stop-the-world GC failing its probes). These are faithful, small re-creations that act on the
real process: the leak really grows RSS until the container's memory limit kills it (the
kernel's cgroup OOM killer on a node, the embedded kubelet's RSS watch in the lab: reason
``OOMKilled``, exit 137), and the pause really blocks the event loop so every other request
waits too.

The leak never kills its own process unless ``MEMORY_LIMIT_MB`` asks for it (unset by
default): a process that SIGKILLs itself is reason ``Error`` on a real node, not
``OOMKilled``. So that a run with no memory limit cannot eat the machine, the leak stops
growing at ``LEAK_CAP_MIB`` (1 GiB, above any limit the manifests set), logs ``leak-capped``
and from then on ``/k8s/memoryleak`` answers 500.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from lab_app.service.lifecycle import log_event

# /k8s/retry and /k8s/delayRetry answer these in turn, to exercise Istio's
# retryOn: gateway-error (503), retriable-4xx (409), then success.
RETRY_STATUSES = (503, 409, 200)

# The leak grows by CHUNK_MIB every STEP_SECONDS (about 64 MiB/s): fast enough for a lab,
# slow enough that a chart of RSS shows the ramp.
CHUNK_MIB = 8
STEP_SECONDS = 0.125
# The safety cap: the leak holds what it has and stops growing here (no memory limit killed
# it). Above the manifests' 256Mi container limit, far below any machine's memory.
LEAK_CAP_MIB = 1024


class RetryCycle:
    """A process-wide counter that yields 503, 409, 200, 503, ... (thread-safe)."""

    def __init__(self, statuses: tuple[int, ...] = RETRY_STATUSES) -> None:
        self._statuses = statuses
        self._calls = 0
        self._lock = threading.Lock()

    def next_status(self) -> tuple[int, int]:
        """Return ``(call number starting at 1, status)`` for the next call."""
        with self._lock:
            self._calls += 1
            calls = self._calls
        return calls, self._statuses[(calls - 1) % len(self._statuses)]


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux: /proc; elsewhere: peak RSS)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        import resource  # not on Windows; the service targets Linux containers

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def kill_like_oom(rss: float, limit_mib: int) -> None:
    """Log ``oom`` and SIGKILL this process (only with ``MEMORY_LIMIT_MB`` set).

    The exit status is the same 137 as a kernel OOM kill, but a Kubernetes node reports it as
    reason ``Error``: only the cgroup limit makes ``OOMKilled``.
    """
    log_event("oom", rss_mb=round(rss, 1), limit_mb=limit_mib, pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


class MemoryLeak:
    """Grows memory in a background thread until something stops it.

    Normally that is the container's memory limit (SIGKILL from outside). With ``limit_mib``
    set, the leak calls ``on_oom`` itself once RSS crosses it. Without either, it stops
    growing at ``cap_mib`` (default ``LEAK_CAP_MIB``), logs ``leak-capped`` and sets
    ``capped``. The thread touches every page it allocates (a zero-filled ``bytearray`` could
    stay virtual), so the growth is real RSS that ``ps``/psutil and a cgroup would see.
    """

    def __init__(
        self,
        limit_mib: int | None = None,
        on_oom: Callable[[float, int], None] = kill_like_oom,
        *,
        cap_mib: int | None = None,
        chunk_mib: int = CHUNK_MIB,
        step_seconds: float = STEP_SECONDS,
    ) -> None:
        self.limit_mib = limit_mib
        self.cap_mib = LEAK_CAP_MIB if cap_mib is None else cap_mib
        self.capped = False
        self._on_oom = on_oom
        self._chunk = chunk_mib << 20
        self._step = step_seconds
        self._hoard: list[bytearray] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> bool:
        """Start leaking; return False if it was already leaking."""
        with self._lock:
            if self._thread is not None:
                return False
            self._thread = threading.Thread(target=self._run, name="memoryleak", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        while True:
            rss = rss_mib()
            if self.limit_mib is not None and rss > self.limit_mib:
                self._on_oom(rss, self.limit_mib)
                return
            if rss + (self._chunk >> 20) > self.cap_mib:
                self.capped = True
                log_event("leak-capped", rss_mb=round(rss, 1), cap_mb=self.cap_mib)
                return  # keeps the hoard: the memory stays in use, it just stops growing
            self._hoard.append(bytearray(b"\x5a") * self._chunk)
            time.sleep(self._step)


def stop_the_world(seconds: float) -> float:
    """Block the calling thread (the event loop when called from an ``async def`` endpoint)
    for ``seconds``, running a real full collection first; return the pause measured.

    Called on the loop thread it stalls every request of the process, like a JVM's
    stop-the-world pause, without burning a shared CPU core for the whole time.
    """
    started = time.perf_counter()
    gc.collect()
    remaining = seconds - (time.perf_counter() - started)
    if remaining > 0:
        time.sleep(remaining)
    return time.perf_counter() - started
