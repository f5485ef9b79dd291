"""How endpoint and config changes reach the proxies: *late*, on purpose.

Envoy applies a file-based xDS update in 2 to 7 ms. Real clusters are much slower, and that
lag is exactly why rolling updates drop requests: a pod is already shutting down while
kube-proxy (iptables ``minSyncPeriod`` about 1 s) or istiod (debounce
``PILOT_DEBOUNCE_AFTER`` 100 ms, at most ``PILOT_DEBOUNCE_MAX`` 10 s) still send it traffic.
So the embedded endpoints controller feeds its proxies through one of these two shapes:

* ``DelayLine`` (kube-proxy): every change is applied ``delay`` seconds after it happened,
  with the state as it was then; changes whose time has come together are applied as one.
* ``Debouncer`` (istiod): a push happens once no change arrived for ``quiet`` seconds (but
  no later than ``max_wait`` after the first pending change) and carries the state at push
  time.

Both are configurable from ``EmbeddedCluster.start(propagation_delay=..., istiod_debounce=...)``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from lab_app.cluster.embedded.waiting import cancel_and_wait, wait_event

T = TypeVar("T")


class DelayLine(Generic[T]):
    """Apply each submitted value ``delay`` seconds after its submission, in order."""

    def __init__(
        self, delay: float, apply: Callable[[T, float], Awaitable[Any]], name: str
    ) -> None:
        self.delay = delay
        self._apply = apply
        self._queue: deque[tuple[float, float, T]] = deque()  # (due monotonic, wall time, value)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name=f"delay-line-{name}")

    def submit(self, value: T) -> None:
        self._queue.append((time.monotonic() + self.delay, time.time(), value))
        self._idle.clear()
        self._wake.set()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until every value submitted so far has been applied."""
        if not await wait_event(self._idle, timeout):
            raise TimeoutError(f"changes still pending after {timeout:g}s")

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            due, _, _ = self._queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            # everything already due collapses into its latest value
            now = time.monotonic()
            _, changed_at, value = self._queue.popleft()
            while self._queue and self._queue[0][0] <= now:
                _, changed_at, value = self._queue.popleft()
            try:
                await self._apply(value, changed_at)
            except asyncio.CancelledError:
                raise
            except Exception:  # the apply callback reports its own failures as events
                pass

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)


class Debouncer:
    """Call ``push(first_change_wall_time)`` after ``quiet`` s without a new trigger."""

    def __init__(
        self,
        quiet: float,
        push: Callable[[float], Awaitable[Any]],
        name: str,
        max_wait: float = 10.0,
    ) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self._push = push
        self._first: float | None = None  # monotonic time of the first pending trigger
        self._first_wall = 0.0
        self._last = 0.0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name=f"debouncer-{name}")

    def trigger(self) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
            self._first_wall = time.time()
        self._last = now
        self._idle.clear()
        self._wake.set()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until nothing is pending (every trigger so far has been pushed)."""
        if not await wait_event(self._idle, timeout):
            raise TimeoutError(f"changes still pending after {timeout:g}s")

    async def _run(self) -> None:
        while True:
            if self._first is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            due = min(self._last + self.quiet, self._first + self.max_wait)
            if now < due:
                self._wake.clear()
                await wait_event(self._wake, due - now)
                continue
            first_wall = self._first_wall
            self._first = None
            try:
                await self._push(first_wall)
            except asyncio.CancelledError:
                raise
            except Exception:
                pass

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
