"""Two labs started at once in two processes (two notebooks, or a notebook and the CLI).

They must be isolated: no shared port, state directory or Envoy shared-memory region (Envoy's
hot-restart ``--base-id``: two Envoys with the same base id on one machine refuse to start,
so every lab Envoy runs with ``--disable-hot-restart``); both serve at the same time; closing
one stops exactly its own processes and leaves the other serving.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
from reliability_testlib import ROOT, alive, all_ok, eventually, listeners

WORKER = Path(__file__).with_name("two_labs_worker.py")


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER)], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip


async def _describe(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
    assert line, f"the lab process exited with {proc.poll()} before it was up"
    return json.loads(line)


async def _close(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("close\n")
    proc.stdin.flush()
    rest = await asyncio.wait_for(asyncio.to_thread(proc.stdout.read), 60)
    assert "closed" in rest
    assert await asyncio.to_thread(proc.wait, 30) == 0


def _envoy_cmdlines(pids: list[int]) -> list[list[str]]:
    out = []
    for pid in pids:
        cmd = psutil.Process(pid).cmdline()
        if Path(cmd[0]).name == "envoy":
            out.append(cmd)
    return out


async def _versions(url: str, n: int) -> list[str]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        replies = await asyncio.gather(*(client.get(url) for _ in range(n)))
    return [f"{r.status_code} {r.headers.get('x-app-version')}" for r in replies]


async def test_two_labs_at_once_are_isolated_and_close_independently() -> None:
    a, b = _start(), _start()
    try:
        info_a, info_b = await asyncio.gather(_describe(a), _describe(b))
        pids_a, pids_b = list(info_a["processes"].values()), list(info_b["processes"].values())
        # gateway, kube-proxy, reaper, app, sidecar each
        assert len(pids_a) == len(pids_b) == 5, (info_a, info_b)
        assert not set(pids_a) & set(pids_b)
        assert info_a["state_dir"] != info_b["state_dir"]
        assert Path(info_a["state_dir"]).is_dir() and Path(info_b["state_dir"]).is_dir()
        ports_a = {port for pid in pids_a for _, port in listeners(pid)}
        ports_b = {port for pid in pids_b for _, port in listeners(pid)}
        # 3 Envoy admin ports, the gateway, kube-proxy and sidecar listeners, the app
        assert len(ports_a) == len(ports_b) == 7, (ports_a, ports_b)
        assert not ports_a & ports_b
        envoys = _envoy_cmdlines(pids_a) + _envoy_cmdlines(pids_b)
        assert len(envoys) == 6
        for cmd in envoys:
            assert "--disable-hot-restart" in cmd and "--base-id" not in cmd, cmd

        # both serve at the same time
        demo_a, demo_b = info_a["gateway"] + "/k8s/demo", info_b["gateway"] + "/k8s/demo"
        got_a, got_b = await asyncio.gather(_versions(demo_a, 20), _versions(demo_b, 20))
        assert got_a == got_b == ["200 v1"] * 20

        # closing A stops A's processes and removes A's state, B keeps serving
        await _close(a)
        await eventually(lambda: not alive(pids_a), 10, message="lab A's processes gone")
        assert not Path(info_a["state_dir"]).exists()
        assert sorted(alive(pids_b)) == sorted(pids_b)
        assert await all_ok(demo_b, 10)
        assert await all_ok(info_b["service"] + "/k8s/demo", 5)
        await _close(b)
        await eventually(lambda: not alive(pids_b), 10, message="lab B's processes gone")
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
