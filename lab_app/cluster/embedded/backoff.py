"""The kubelet's crash back-off, for the proxies the embedded cluster supervises.

Why: a crashed Envoy (the gateway, a kube-proxy stand-in, a pod's sidecar) is restarted like a
crashed container. Restarting it in a tight loop would flood the event stream and the CPU
when the restart cannot succeed (its port taken by another program, the Envoy binary gone),
so the delays follow the kubelet: the first restart is immediate, then 10 s, doubling up to
300 s, and the count starts again once a run lasted 10 minutes. ``scale`` shrinks every delay
(the cluster's ``crash_backoff_scale`` option; tests use e.g. 0.05).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lab_app.cluster.events import EventKind

BACKOFF_BASE = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0


@dataclass
class CrashBackoff:
    """Delays before successive restarts of one crashing process."""

    scale: float = 1.0
    base: float = BACKOFF_BASE
    maximum: float = BACKOFF_MAX
    reset_after: float = BACKOFF_RESET_AFTER
    failures: int = 0

    def next_delay(self, ran_for: float = 0.0) -> float:
        """Seconds to wait before the next restart of a process that ran ``ran_for`` seconds."""
        if ran_for >= self.reset_after:
            self.failures = 0
        delay = 0.0
        if self.failures > 0:
            delay = min(self.base * 2 ** (self.failures - 1), self.maximum) * self.scale
        self.failures += 1
        return delay


async def restart_with_backoff(
    start: Callable[[], Awaitable[object]],
    backoff: CrashBackoff,
    delay: float,
    *,
    stopping: Callable[[], bool],
    failed: Callable[[Exception, float], object],
) -> bool:
    """Wait ``delay``, then ``start()``; after each failure report it with the next delay
    (``failed(exc, delay)``) and try again after it. True once started, False if
    ``stopping()`` turned true first."""
    while not stopping():
        if delay > 0:
            await asyncio.sleep(delay)
        if stopping():
            return False
        try:
            await start()
        except Exception as exc:
            delay = backoff.next_delay()
            failed(exc, delay)
            continue
        return True
    return False


def report_restart_failure(
    emit: Callable[..., object], obj: str, what: str, exc: Exception, delay: float, **data: Any
) -> None:
    """The ``Note`` event of a failed restart (``what``: "restart", "sidecar restart")."""
    emit(
        EventKind.NOTE,
        obj,
        f"{what} failed: {exc}; next attempt in {delay:g}s",
        {**data, "reason": "RestartFailed", "error": str(exc), "backoff_seconds": delay},
    )
