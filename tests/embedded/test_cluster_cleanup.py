"""Nothing the lab starts outlives it: close(), an exception, a SIGKILLed owner.

Also: every listening socket of every lab process is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from cluster_testlib import APP, ISTIO, ROOT, alive, eventually, manifest

from lab_app.cluster.embedded import EmbeddedCluster


async def _start_with_sidecars() -> EmbeddedCluster:
    cluster = await EmbeddedCluster.start()
    for name in ISTIO:
        await cluster.apply(manifest(name))
    await cluster.wait_rollout(APP, timeout=60)
    return cluster


async def test_close_stops_everything_and_listeners_are_loopback() -> None:
    cluster = await _start_with_sidecars()
    state_dir = cluster.state_dir
    try:
        procs = cluster.processes()
        # reaper, gateway, kube-proxy, 2 apps, 2 sidecars
        assert len(procs) == 7, procs
        assert sum(1 for k in procs if k.endswith("-sidecar")) == 2
        listeners, unconnected_udp = [], []
        for name, pid in procs.items():
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listeners.append((name, conn.laddr.ip, conn.laddr.port))
                elif conn.type == socket.SOCK_DGRAM and not conn.raddr:
                    unconnected_udp.append((name, conn.laddr.ip, conn.laddr.port))
        # every Envoy has an admin port; the gateway, kube-proxy, sidecars and apps listen too
        assert len(listeners) >= 2 + 2 + 2 + 2 + 2, listeners
        assert {ip for _, ip, _ in listeners} == {"127.0.0.1"}, listeners
        assert {ip for _, ip, _ in unconnected_udp} <= {"127.0.0.1"}, unconnected_udp
        # the admin APIs (config dumps, /quitquitquit) are among them: gateway, kube-proxy and
        # both sidecars
        admins = {cluster._envoy_of(p).admin_port for p in ("gateway", f"kube-proxy-{APP}")}
        admins |= {p.extra["sidecar_admin_port"] for p in await cluster.pods()}
        assert len(admins) == 4 and admins <= {port for _, _, port in listeners}, admins
    finally:
        await cluster.close()
    await eventually(lambda: not alive(set(procs.values())), 10, message="all lab processes gone")
    assert not state_dir.exists()


async def test_exception_inside_async_with_stops_everything() -> None:
    pids: set[int] = set()
    with pytest.raises(RuntimeError, match="boom"):
        async with EmbeddedCluster(sidecar_injection=False) as cluster:
            await cluster.apply([manifest("configmap.yaml"), manifest("deployment.yaml")])
            await cluster.wait_rollout(APP, timeout=30)
            pids = set(cluster.processes().values())
            assert len(pids) == 4  # reaper, gateway, 2 pods
            raise RuntimeError("boom")
    assert cluster.closed
    await eventually(lambda: not alive(pids), 10, message="all lab processes gone")


OWNER = textwrap.dedent(
    """
    import asyncio, json, subprocess, sys
    from lab_app.cluster.embedded import EmbeddedCluster

    ISTIO = {istio!r}

    async def main():
        c = await EmbeddedCluster.start()
        for name in ISTIO:
            await c.apply("manifests/" + name)
        await c.wait_rollout("{app}", timeout=60)
        # a child with no PDEATHSIG, known only to the reaper: the watchdog must get it
        orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
        c._reaper.watch(orphan.pid)
        await asyncio.sleep(0.3)  # let the reaper read the registration
        print(json.dumps({{"pids": list(c.processes().values()), "orphan": orphan.pid,
                          "state_dir": str(c.state_dir)}}), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


async def test_sigkill_of_the_owner_leaves_nothing_running() -> None:
    code = OWNER.format(istio=ISTIO, app=APP)
    owner = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 90)
        info = json.loads(line)
        pids = set(info["pids"]) | {info["orphan"]}
        assert len(alive(pids)) == 8  # reaper, gateway, kube-proxy, 2 apps, 2 sidecars, orphan
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        await eventually(
            lambda: not alive(pids), 15, message="every process of the dead owner gone"
        )
        await eventually(
            lambda: not Path(info["state_dir"]).exists(), 10, message="state dir removed"
        )
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
