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


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("json_out", [False, True], ids=["report", "json-stdout"])
async def test_ctrl_c_stops_zdlab_load_with_the_partial_results(
    target: CountingServer, json_out: bool
) -> None:
    args = [*ZDLAB, "load", target.url, "-qps", "100", "-c", "2", "-t", "30s"]
    proc = subprocess.Popen(
        args + (["-json", "-"] if json_out else []),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = TreeWatch(proc)
    try:
        await eventually(lambda: target.count >= 30, 20, message="30 requests from the CLI")
    except BaseException:
        _communicate(proc, 0.1)
        raise
    t0 = time.monotonic()
    answered = target.count
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.to_thread(_communicate, proc, 15)
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
    proc = subprocess.Popen(
        [*ZDLAB, "experiment", "naive-rolling-update", "--qps", "50", "--duration", "20",
         "--json", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = TreeWatch(proc)
    try:
        v1 = await eventually(lambda: watch.pod_pids(at_least=2), 90, message="v1 pods started")
        # a v2 pod of the rolling update: the load has been running for 4 s
        await eventually(lambda: watch.pod_pids() - v1, 60, message="the rollout started")
        state_dir = watch.state_dir()
        proc.send_signal(signal.SIGINT)
    except BaseException:
        _communicate(proc, 0.1)
        raise
    stdout, stderr = await asyncio.to_thread(_communicate, proc, 60)
    assert proc.returncode == 130, stderr
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["requests"] > 0
    assert data["per_load"]["demo"]["stopped_early"] is True
    verdict = re.search(r"\(interrupted: partial results\): (\d+) requests", stdout)
    assert verdict and int(verdict.group(1)) == data["requests"], stdout
    assert "All done" in stdout and "Code 200 :" in stdout
    pids = await watch.stop()
    assert len(pids) >= 6  # reaper, gateway, kube-proxy, 3 pods
    await eventually(lambda: not alive(pids), 15, message="every process of the CLI stopped")
    assert not state_dir.exists()


async def test_sigkill_of_zdlab_experiment_leaves_nothing_running() -> None:
    proc = subprocess.Popen(
        [*ZDLAB, "experiment", "naive-rolling-update", "--qps", "50", "--duration", "20"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = TreeWatch(proc)
    try:
        await eventually(lambda: len(watch.services()) >= 2, 90, message="the pods started")
        state_dir = watch.state_dir()
    finally:
        proc.kill()  # SIGKILL: no cleanup code of the CLI runs
        _communicate(proc, 10)
    pids = await watch.stop()
    assert len(pids) >= 5  # reaper, gateway, kube-proxy, 2 pods
    await eventually(lambda: not alive(pids), 15, message="the reaper stopped every process")
    await eventually(lambda: not state_dir.exists(), 10, message="state directory removed")


async def test_a_second_ctrl_c_aborts_at_once_and_still_stops_everything() -> None:
    proc = subprocess.Popen(
        [*ZDLAB, "experiment", "naive-rolling-update", "--qps", "50", "--duration", "20"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = TreeWatch(proc)
    try:
        await eventually(lambda: len(watch.services()) >= 2, 90, message="the pods started")
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        line = ""
        while "zdlab: stopping" not in line:  # the first Ctrl-C was handled
            line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 10)
            assert line, "stderr closed before the first Ctrl-C was acknowledged"
        assert "Ctrl-C again to abort" in line
        proc.send_signal(signal.SIGINT)
    except BaseException:
        _communicate(proc, 0.1)
        raise
    _, stderr = await asyncio.to_thread(_communicate, proc, 60)
    assert proc.returncode == 130, stderr
    assert "zdlab: aborted" in stderr and "Traceback" not in stderr, stderr
    pids = await watch.stop()
    assert len(pids) >= 5  # reaper, gateway, kube-proxy, 2 pods
    await eventually(lambda: not alive(pids), 15, message="every process of the CLI stopped")
