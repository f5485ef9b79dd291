"""The controllers' loop: one reconcile pass whenever something changed, and waiting on it.

Kubernetes' controllers are level-triggered: each pass looks at the whole state and moves it
one step toward the spec, so a pass may run too often but never misses a change. Here every
part that changes something (a pod's readiness, an ``apply``) calls ``kick()``; the loop runs
a pass then, or every 0.5 s anyway. ``wait_for`` re-checks its predicate after each pass, so
``wait_rollout`` and the tests wake exactly when the state may have moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab_app.cluster.embedded.waiting import cancel_and_wait, wait_event

PERIOD = 0.5  # a pass at least this often, kicked or not


@dataclass(eq=False, repr=False)
class ControlLoop:
    """Runs ``step()`` after each ``kick()`` (or every ``PERIOD``); a failing step is reported
    to ``on_error`` and the loop goes on (a controller bug must not stop the cluster)."""

    step: Callable[[], None]
    on_error: Callable[[Exception], object]
    _dirty: asyncio.Event | None = field(default=None, init=False)
    # replaced after each pass, then set
    _changed: asyncio.Event | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stopped: bool = field(default=False, init=False)

    def prepare(self) -> None:
        """Create the events (``kick`` and ``wait_for`` work from now on)."""
        self._dirty, self._changed = asyncio.Event(), asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="zdlab-controllers")

    def kick(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        assert self._dirty is not None
        while not self._stopped:
            await wait_event(self._dirty, PERIOD)
            self._dirty.clear()
            try:
                self.step()
            except Exception as exc:
                self.on_error(exc)
            changed, self._changed = self._changed, asyncio.Event()
            assert changed is not None
            changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, re-checked after every pass (TimeoutError)."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        while True:
            event = self._changed
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout:g}s")
            await wait_event(event, min(remaining, PERIOD))
