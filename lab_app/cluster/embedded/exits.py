"""How a container's end is told: its exit code, its reason, its termination message.

Kubernetes reports ``OOMKilled`` only when the kernel's cgroup OOM killer ended the
container. The lab's stand-in for that killer is ``watch_memory`` (psutil, every
``oom_poll_seconds``): it SIGKILLs a container whose RSS -- the process and its children, as
a cgroup counts them -- crosses ``resources.limits.memory``. So ``exit_status`` says
``OOMKilled`` only for a SIGKILL that watch sent; any other death by signal (the app killed
itself, someone ran ``kill -9``) is ``Error`` with exit code 128+n, as on a real node. The
termination message follows ``terminationMessagePolicy: FallbackToLogsOnError``: an app that
exits with an error status usually said why on its last log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ExitStatus:
    """``exit_code`` as the kubelet reports it (128+n for signal n), the ``signal`` (0: none)
    and the ``reason``: ``Completed``, ``Error`` or ``OOMKilled``."""

    exit_code: int
    signal: int
    reason: str


def exit_status(returncode: int, oom_killed_by_kubelet: bool) -> ExitStatus:
    """Classify ``Process.returncode`` (negative: killed by that signal)."""
    sig = -returncode if returncode < 0 else 0
    exit_code = 128 + sig if sig else returncode
    if oom_killed_by_kubelet and sig == signal.SIGKILL:
        reason = "OOMKilled"
    elif exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    return ExitStatus(exit_code, sig, reason)


def last_log_line(log: Path, offset: int, limit: int = 300) -> str:
    """The last non-empty line the container wrote after ``offset`` (at most ``limit``
    characters): the termination message of an app that failed."""
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


async def watch_memory(
    proc: asyncio.subprocess.Process,
    limit: int,
    poll_seconds: float,
    over_limit: Callable[[int], None],
) -> None:
    """The cgroup memory limit: once the container's RSS (with its children) goes over
    ``limit`` bytes, call ``over_limit(rss)`` -- which must SIGKILL it -- and return."""
    try:
        ps = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while proc.returncode is None:
        try:
            rss = ps.memory_info().rss
            for child in ps.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
        except psutil.Error:
            return
        if rss > limit and proc.returncode is None:
            over_limit(rss)
            return
        await asyncio.sleep(poll_seconds)
