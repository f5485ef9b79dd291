"""The watchdog that kills a cluster's processes when their owner dies without cleaning up.

Why: a notebook kernel can be SIGKILLed (a restart, an OOM, a crashed test runner). The
children already carry ``PR_SET_PDEATHSIG`` (see ``procs.py``), but that only fires when
the *thread* that forked them exits, and only for the direct child. This tiny process is
the second line of defence: it is started in its own session (so a signal to the owner's
process group does not reach it), reads ``+PID CREATE_TIME`` / ``-PID`` lines on stdin
from its owner, and when the owner is gone -- stdin reaches EOF because the owner's end of
the pipe closed, or the owner's pid no longer exists -- it SIGKILLs each registered process
group, removes the state directory if it was given one, and exits.

Usage (by ``Reaper.start``, not by hand; it runs this file directly so that it imports only
the standard library and psutil)::

    python .../lab_app/cluster/embedded/reaper.py --owner PID --owner-start T [--remove DIR]

A line ``quit`` ends the reaper after a last sweep and the directory's removal (the owner's
normal ``close()``).
Registered pids are checked against their creation time before a kill, so a recycled
pid is never hit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import sys
import time

POLL_SECONDS = 0.2


def _alive(pid: int, create_time: float | None) -> bool:
    """True if ``pid`` exists and (when given) was created at ``create_time``."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a lab dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.05
    except psutil.Error:
        return False


def _kill_group(pid: int, create_time: float | None) -> None:
    """SIGKILL the process group led by ``pid`` (each child is a session leader)."""
    if not _alive(pid, create_time):
        # The leader is gone; its group may still hold children (rare: our children are
        # single processes), so try the group without risking a recycled pid.
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def sweep(registered: dict[int, float | None]) -> None:
    for pid, created in list(registered.items()):
        _kill_group(pid, created)
    registered.clear()


def run(owner: int, owner_start: float | None, remove: str | None) -> int:
    registered: dict[int, float | None] = {}
    buffer = b""
    stdin = sys.stdin.buffer.fileno()
    reason = "owner gone"
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_SECONDS)
        if ready:
            chunk = os.read(stdin, 4096)
            if not chunk:
                reason = "owner pipe closed"
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            quit_requested = False
            for raw in lines:
                parts = raw.decode("ascii", "replace").split()
                if not parts:
                    continue
                if parts[0] == "quit":
                    quit_requested = True
                elif parts[0].startswith("+"):
                    created = float(parts[1]) if len(parts) > 1 else None
                    registered[int(parts[0][1:])] = created
                elif parts[0].startswith("-"):
                    registered.pop(int(parts[0][1:]), None)
            if quit_requested:
                reason = "quit"
                break
        if not _alive(owner, owner_start):
            break
    if registered and reason != "quit":
        print(
            f"zdlab-reaper: {reason}; killing {len(registered)} process group(s)",
            file=sys.stderr,
            flush=True,
        )
    sweep(registered)
    if remove:
        # also on "quit": the owner may be killed right after asking, before its own cleanup
        remove_tree(remove)
    return 0


def remove_tree(path: str, attempts: int = 5) -> None:
    """Remove ``path``; retry briefly if a dying process still wrote into it."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_app.cluster.embedded.reaper")
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--owner-start", type=float, default=None)
    parser.add_argument("--remove", default=None, help="directory to remove at the end")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the owner's terminal
    return run(args.owner, args.owner_start, args.remove)


if __name__ == "__main__":
    sys.exit(main())
