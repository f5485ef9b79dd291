"""``zdlab experiment``: Ctrl-C keeps the partial results, writes the JSON, stops everything."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lab_children(pid: int) -> list[psutil.Process]:
    try:
        return [
            p
            for p in psutil.Process(pid).children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE
        ]
    except psutil.Error:
        return []


def _pods(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if "lab_app.service" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


async def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def test_ctrl_c_keeps_partial_results_and_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "naive.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab_app.cli", "experiment", "naive-rolling-update",
         "--qps", "50", "--duration", "60", "--json", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # the pods run and the kube-proxy path answers: the load is about to start or running
        await _until(lambda: len(_pods(_lab_children(proc.pid))) >= 2, 60, "pods started")
        children = _lab_children(proc.pid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    data = json.loads(out.read_text())
    assert data["scenario"] == "naive-rolling-update" and data["interrupted"] is True
    assert "interrupted" in stdout
    await _until(lambda: not [p for p in children if _alive(p)], 15, "every lab process stopped")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hardened-rolling-update", "--via", "gateway"], "--via is for naive-rolling-update"),
        # a bad value fails before anything starts
        (["sidecar-rolling-update", "--drain-setting", "drain-duration=soon"],
         "drain-duration=SECONDS"),
    ],
    ids=["flag-of-another-experiment", "bad-drain-setting"],
)  # fmt: skip
def test_cli_refuses_bad_flags_before_starting(argv: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "lab_app.cli", "experiment", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and message in run.stderr, run.stderr
