"""Starting the embedded cluster's processes so that none of them can outlive the lab.

Two independent mechanisms, belt and braces:

* ``PR_SET_PDEATHSIG`` = SIGKILL, set in the child between fork and exec. The kernel kills
  the child when the *thread* that forked it exits. ``spawn`` is called on the event loop's
  thread (the kernel's main thread in a notebook, the main thread under ``asyncio.run``),
  which lives as long as the lab.
* A ``Reaper``: a watchdog process (``python -m lab_app.cluster.embedded.reaper``) in its own
  session that learns every child's pid over a pipe and SIGKILLs their process groups when
  the owner's end of the pipe closes or the owner's pid disappears.

Every child is started in a new session (``start_new_session``), so it is the leader of its
own process group: Ctrl-C in a terminal does not reach it (the lab decides when pods stop),
and a group kill takes anything it may have forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    prctl = _libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    _prctl: Callable[..., int] | None = prctl
except (OSError, AttributeError):  # not Linux: the reaper alone has to do
    _libc = None
    _prctl = None


def _child_setup(parent_pid: int) -> None:
    """Runs in the child after fork: die with the parent (and never outlive it by a race)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(137)


def process_start_time(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None


class Reaper:
    """Owner side of the watchdog process: register children, stop it on close."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid

    @classmethod
    async def start(cls, remove_dir: Path | None = None) -> Reaper:
        me = os.getpid()
        # run the file, not ``-m``: importing the lab_app package would cost ~0.3 s and ~30 MB
        argv = [
            sys.executable,
            str(Path(__file__).with_name("reaper.py")),
            "--owner",
            str(me),
            "--owner-start",
            repr(process_start_time(me) or 0.0),
        ]
        if remove_dir is not None:
            argv += ["--remove", str(remove_dir)]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=None,
            start_new_session=True,  # survives a signal to our process group; no PDEATHSIG
            env=_python_env(),
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing() or not self.alive:
            return
        stdin.write((line + "\n").encode("ascii"))

    def watch(self, pid: int) -> None:
        """Kill ``pid``'s process group if this process dies without calling ``stop``."""
        created = process_start_time(pid)
        self._send(f"+{pid} {created!r}" if created else f"+{pid}")

    def unwatch(self, pid: int) -> None:
        self._send(f"-{pid}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Tell the reaper to sweep what is still registered and exit."""
        if self.alive:
            self._send("quit")
            with contextlib.suppress(Exception):
                assert self._proc.stdin is not None
                await self._proc.stdin.drain()
                self._proc.stdin.close()
            from lab_app.cluster.embedded.waiting import wait_done

            if not await wait_done(self._proc.wait(), timeout):
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()


def _python_env() -> dict[str, str]:
    """Environment for helper Python processes: ours, so the venv's packages are found."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    log_path: Path | None = None,
    reaper: Reaper | None = None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session with PDEATHSIG set; stdout+stderr go to ``log_path``.

    Output goes straight into the file (no pipe through this process), so a chatty pod costs
    the event loop nothing.
    """
    parent = os.getpid()
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - child owns it
    creating = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log if log is not None else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd) if cwd is not None else None,
            env=dict(env),
            start_new_session=True,
            preexec_fn=lambda: _child_setup(parent),
        )
    )
    try:
        proc = await asyncio.shield(creating)
    except asyncio.CancelledError:
        # cancelled while forking: the child may exist already; it must not be left behind
        with contextlib.suppress(BaseException):
            orphan = await creating
            kill_group(orphan.pid, signal.SIGKILL)
            await orphan.wait()
        raise
    finally:
        if log is not None:
            log.close()
    if reaper is not None:
        reaper.watch(proc.pid)
    return proc


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by ``pid`` (and to ``pid``), ignoring the dead."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
