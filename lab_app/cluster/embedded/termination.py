"""The kubelet's ``killContainer`` for an app container: preStop, SIGTERM, SIGKILL.

The order and the clocks are what zero-downtime rollouts depend on: the ``preStop`` hook
(a sleep or an HTTP GET) runs first and is cut when ``terminationGracePeriodSeconds`` (which
includes the preStop time) runs out; then one SIGTERM; then SIGKILL at the deadline -- but at
least ``minimumGracePeriodInSeconds`` (2 s, ``kuberuntime_container.go``) after the SIGTERM,
however long preStop took. Used for pod deletion and for liveness/startup probe failures
(``pods.Pod``); the sidecar's part of a deletion is ``sidecar.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from lab_app.cluster.embedded import probes
from lab_app.cluster.embedded.procs import kill_group
from lab_app.cluster.embedded.specs import PreStop
from lab_app.cluster.embedded.waiting import wait_done
from lab_app.cluster.events import EventKind

MINIMUM_GRACE_PERIOD = 2.0  # kuberuntime_container.go minimumGracePeriodInSeconds
PodEmit = Callable[..., Any]  # Pod._emit: (kind, message, **data)


async def stop_container(
    *,
    current: Callable[[], asyncio.subprocess.Process | None],
    pre_stop: PreStop | None,
    app_port: int,
    deadline: float,
    minimum_grace_period: float,
    termination_grace: float,
    why: str,
    emit: PodEmit,
) -> None:
    """preStop, then SIGTERM, then SIGKILL at ``deadline`` (monotonic) or ``minimum_grace_period``
    after SIGTERM, whichever is later. ``current()`` is the container's process, read again
    after the preStop hook (it may have exited meanwhile)."""
    proc = current()
    if pre_stop is not None and proc is not None and proc.returncode is None:
        emit(
            EventKind.PRESTOP_STARTED,
            f"preStop sleep {pre_stop.sleep_seconds:g}s"
            if not pre_stop.http
            else f"preStop GET {pre_stop.http.path}",
        )
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                if pre_stop.http is not None:
                    await probes.http_get(
                        app_port, pre_stop.http.path, timeout=max(0.1, deadline - time.monotonic())
                    )
                else:
                    await wait_or_exit(proc, pre_stop.sleep_seconds)
            emit(EventKind.PRESTOP_FINISHED, "preStop hook finished")
        except TimeoutError:
            emit(EventKind.PRESTOP_FINISHED, "preStop hook cut by the grace period")
    proc = current()
    if proc is None or proc.returncode is not None:
        return
    # killContainer: whatever preStop used, SIGTERM gets at least minimumGracePeriodInSeconds
    kill_at = max(deadline, time.monotonic() + minimum_grace_period)
    extended = kill_at > deadline
    emit(
        EventKind.SIGTERM,
        why
        + (
            f" (grace period used up: the kubelet's {minimum_grace_period:g}s minimum)"
            if extended
            else ""
        ),
        pid=proc.pid,
        seconds_to_sigkill=round(kill_at - time.monotonic(), 3),
    )
    sigterm_once(proc.pid)
    if not await wait_done(proc.wait(), kill_at - time.monotonic()):
        emit(
            EventKind.SIGKILL,
            f"still running after terminationGracePeriodSeconds={termination_grace:g}"
            + (f" and the {minimum_grace_period:g}s minimum" if extended else ""),
            pid=proc.pid,
        )
        kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()


def sigterm_once(pid: int) -> None:
    """One SIGTERM to the container (its process group), as the runtime sends it. Not
    ``kill_group``: that signals the group *and* the leader, and a second SIGTERM tells a
    graceful app to hurry (the lab's service then cuts what is in flight)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


async def wait_or_exit(proc: asyncio.subprocess.Process, seconds: float) -> None:
    """Sleep ``seconds`` but stop early if the container exits meanwhile."""
    await wait_done(proc.wait(), seconds)
