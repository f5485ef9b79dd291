"""Manual gates on a running cutover: pause, resume, promote, abort.

Argo Rollouts has ``kubectl argo rollouts pause|promote|abort`` (``promote --full`` skips the
remaining steps and analysis; ``abort`` sends all traffic back to the stable version);
Flagger has webhooks of type ``confirm-rollout``, ``confirm-promotion`` and ``rollback``. The
lab's gate is the same idea as four methods a notebook cell can call while the cutover runs
as a background task:

* ``pause()``: hold the current weight. Analysis goes on, so a canary that fails while paused
  is still rolled back (a pause must not switch the safety net off).
* ``resume()``: advance again after the current interval.
* ``promote()``: skip the remaining steps and checks, send 100 % to the canary now.
* ``abort()``: send 100 % back to the stable version now.

The methods are plain functions (not coroutines) so a cell can call them without ``await``;
they must be called on the event loop that runs the cutover (a notebook's cells are).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

from lab_app.errors import LabError
from lab_app.progressive.decisions import Action

Command = Literal["promote", "abort"]


class Gate:
    """The switches of one cutover (see the module doc)."""

    def __init__(self) -> None:
        self.paused = False
        self.command: Command | None = None
        self.command_reason = ""
        self.finished = ""  # the outcome once the cutover is over
        self._wake = asyncio.Event()
        self._listeners: list[Callable[[Action, str], None]] = []

    def on_change(self, listener: Callable[[Action, str], None]) -> None:
        """Call ``listener(action, reason)`` on pause/resume (the controller records them)."""
        self._listeners.append(listener)

    def _check_running(self, what: str) -> None:
        if self.finished:
            raise LabError(f"cannot {what}: the cutover is over ({self.finished})")
        if self.command is not None:
            raise LabError(f"cannot {what}: {self.command} was already requested")

    def _notify(self, action: Action, reason: str) -> None:
        for listener in self._listeners:
            listener(action, reason)

    def pause(self, reason: str = "paused by hand") -> None:
        """Hold the current weight (analysis continues; a failing canary is still rolled back)."""
        self._check_running("pause")
        if not self.paused:
            self.paused = True
            self._notify(Action.PAUSED, reason)

    def resume(self, reason: str = "resumed by hand") -> None:
        """Advance again after the current analysis interval."""
        self._check_running("resume")
        if self.paused:
            self.paused = False
            self._notify(Action.RESUMED, reason)

    def promote(self, reason: str = "promoted by hand: remaining steps and checks skipped") -> None:
        """Skip to 100 % on the canary now (Argo Rollouts' ``promote --full``)."""
        self._request("promote", reason)

    def abort(self, reason: str = "aborted by hand") -> None:
        """Send all traffic back to the stable version now."""
        self._request("abort", reason)

    def _request(self, command: Command, reason: str) -> None:
        self._check_running(command)
        self.command = command
        self.command_reason = reason
        self._wake.set()

    async def wait(self, timeout: float) -> Command | None:
        """Sleep ``timeout`` seconds unless promote/abort comes first; returns the command."""
        if self.command is None and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        return self.command

    def finish(self, outcome: str) -> None:
        self.finished = outcome or "finished"
