"""Ctrl-C (SIGINT) and kill -9 to the ``zdlab`` commands, mid-run.

Decided behaviour (also in the README's "What can go wrong"): the first Ctrl-C stops the run,
prints the fortio-style report of the requests made so far, writes the partial JSON when
``-json``/``--json`` was given, and exits with status 130 (128 + SIGINT, the shell's
convention), so a script can tell a partial run from a complete one. Every process the
command started is stopped, also when the command itself is SIGKILLed (then the lab's reaper
does it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from reliability_testlib import ROOT, CountingServer, alive, eventually, tree

ZDLAB = [sys.executable, "-m", "lab_app.cli"]
NAIVE = ["experiment", "naive-rolling-update", "--qps", "50", "--duration", "20"]


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    try:
        yield server
    finally:
        server.close()


class TreeWatch:
    """Every descendant a command ever had, sampled until it exits (a process started after a
    single snapshot would otherwise escape the check)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: dict[int, psutil.Process] = {}
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.proc.poll() is None:
            self.sample()
            await asyncio.sleep(0.05)

    def sample(self) -> list[psutil.Process]:
        """The descendants now (and remember them)."""
        now = tree(self.proc.pid)
        for p in now:
            self.seen.setdefault(p.pid, p)
        return now

    def services(self) -> list[psutil.Process]:
        """The pods (``python -m lab_app.service``) running now."""
        out = []
        for p in self.sample():
            try:
                if "lab_app.service" in p.cmdline():
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def pod_pids(self, at_least: int = 0) -> set[int]:
        """The pods' pids now; empty if there are fewer than ``at_least``."""
        pids = {p.pid for p in self.services()}
        return pids if len(pids) >= at_least else set()

    def state_dir(self) -> Path:
        for p in self.sample():
            cmd = p.cmdline()
            if any(a.endswith("reaper.py") for a in cmd) and "--remove" in cmd:
                return Path(cmd[cmd.index("--remove") + 1])
        raise AssertionError("no reaper with a state directory to remove")

    async def stop(self) -> list[int]:
        await self._task
        return list(self.seen)


def _start(*args: str) -> tuple[subprocess.Popen[str], TreeWatch]:
    """``zdlab ARGS`` with its output piped, and the watch on its descendants."""
    proc = subprocess.Popen(
        [*ZDLAB, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, TreeWatch(proc)


async def _all_gone(watch: TreeWatch, at_least: int, message: str) -> None:
    """The command has exited: its descendants (at least ``at_least``) all stop in 15 s."""
    pids = await watch.stop()
    assert len(pids) >= at_least, pids
    await eventually(lambda: not alive(pids), 15, message=message)


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@contextlib.contextmanager
def _killed_on_failure(proc: subprocess.Popen[str]) -> Iterator[None]:
    """A failure inside the block kills ``proc`` first: a failed test leaves no CLI running."""
    try:
        yield
    except BaseException:
        _communicate(proc, 0.1)
        raise


async def _exit(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``proc``'s (stdout, stderr) once it exited by itself within ``timeout`` (else killed)."""
    return await asyncio.to_thread(_communicate, proc, timeout)


@pytest.mark.parametrize("json_out", [False, True], ids=["report", "json-stdout"])
async def test_ctrl_c_stops_zdlab_load_with_the_partial_results(
    target: CountingServer, json_out: bool
) -> None:
    args = ["load", target.url, "-qps", "100", "-c", "2", "-t", "30s"]
    proc, watch = _start(*args, *(["-json", "-"] if json_out else []))
    with _killed_on_failure(proc):
        await eventually(lambda: target.count >= 30, 20, message="30 requests from the CLI")
    t0 = time.monotonic()
    answered = target.count
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await _exit(proc, 15)
    assert time.monotonic() - t0 < 5, "stopped at once, not at the end of -t 30s"
    assert proc.returncode == 130, stderr
    assert "interrupted, partial results follow" in stderr
    report = stderr if json_out else stdout
    done = re.search(r"All done (\d+) calls", report)
    assert done, report
    calls = int(done.group(1))
    # every answered request is counted; those in flight at the stop (at most -c 2) finish first
    assert answered - 2 <= calls <= target.count
    assert f"Code 200 : {calls} (100.0 %)" in report
    if json_out:
        doc = json.loads(stdout)
        assert doc["zdlab"]["stopped_early"] is True and doc["RetCodes"] == {"200": calls}
    assert not alive(await watch.stop())


async def test_ctrl_c_mid_rollout_keeps_partial_results_and_stops_everything(
    tmp_path: Path,
) -> None:
    out = tmp_path / "naive.json"
    proc, watch = _start(*NAIVE, "--json", str(out))
    with _killed_on_failure(proc):
        v1 = await eventually(lambda: watch.pod_pids(at_least=2), 90, message="v1 pods started")
        # a v2 pod of the rolling update: the load has been running for 4 s
        await eventually(lambda: watch.pod_pids() - v1, 60, message="the rollout started")
        state_dir = watch.state_dir()
        proc.send_signal(signal.SIGINT)
    stdout, stderr = await _exit(proc, 60)
    assert proc.returncode == 130, stderr
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["requests"] > 0
    assert data["per_load"]["demo"]["stopped_early"] is True
    verdict = re.search(r"\(interrupted: partial results\): (\d+) requests", stdout)
    assert verdict and int(verdict.group(1)) == data["requests"], stdout
    assert "All done" in stdout and "Code 200 :" in stdout
    # reaper, gateway, kube-proxy, 3 pods
    await _all_gone(watch, 6, "every process of the CLI stopped")
    assert not state_dir.exists()


async def test_sigkill_of_zdlab_experiment_leaves_nothing_running() -> None:
    proc, watch = _start(*NAIVE)
    try:
        await eventually(lambda: len(watch.services()) >= 2, 90, message="the pods started")
        state_dir = watch.state_dir()
    finally:
        proc.kill()  # SIGKILL: no cleanup code of the CLI runs
        _communicate(proc, 10)
    await _all_gone(watch, 5, "the reaper stopped every process")  # reaper, gateway, ..., 2 pods
    await eventually(lambda: not state_dir.exists(), 10, message="state directory removed")


async def test_a_second_ctrl_c_aborts_at_once_and_still_stops_everything() -> None:
    proc, watch = _start(*NAIVE)
    with _killed_on_failure(proc):
        await eventually(lambda: len(watch.services()) >= 2, 90, message="the pods started")
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        line = ""
        while "zdlab: stopping" not in line:  # the first Ctrl-C was handled
            line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 10)
            assert line, "stderr closed before the first Ctrl-C was acknowledged"
        assert "Ctrl-C again to abort" in line
        proc.send_signal(signal.SIGINT)
    _, stderr = await _exit(proc, 60)
    assert proc.returncode == 130, stderr
    assert "zdlab: aborted" in stderr and "Traceback" not in stderr, stderr
    # reaper, gateway, kube-proxy, 2 pods
    await _all_gone(watch, 5, "every process of the CLI stopped")
