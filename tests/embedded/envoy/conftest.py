"""Fixtures for the Envoy layer's tests: real Envoy processes and in-process upstreams.

Helper modules here have names of their own (envoy_testlib, envoy_upstream): test directories
have no __init__.py, so their modules share one namespace with every other test directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from envoy_upstream import Upstream

from lab_app.cluster.embedded.envoy import EnvoyProcess, running_envoy_pids


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture
async def envoys(tmp_path: Path) -> AsyncIterator[Callable[..., EnvoyProcess]]:
    """A factory of EnvoyProcess objects, each in its own directory; all stopped at the end."""
    made: list[EnvoyProcess] = []

    def make(name: str = "gateway", **kwargs: Any) -> EnvoyProcess:
        proc = EnvoyProcess(tmp_path / f"{name}-{len(made)}", name=name, **kwargs)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        await proc.stop(graceful=False)
    assert not (running_envoy_pids() & {p.pid for p in made}), "an Envoy outlived its test"


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    made: list[Upstream] = []

    async def make(version: str, name: str = "") -> Upstream:
        up = await Upstream(version, name or f"pod-{version}-{len(made)}").start()
        made.append(up)
        return up

    yield make
    for up in made:
        await up.stop()


@pytest.fixture
def report() -> Callable[[str], None]:
    """Print a measured figure to the terminal even without -s (and keep it in a file)."""
    out = Path(os.environ.get("ZDLAB_ENVOY_MEASUREMENTS", "/tmp/zdlab-envoy-measurements.txt"))

    def emit(line: str) -> None:
        sys.__stderr__.write(f"\n[measured] {line}\n")
        with out.open("a") as f:
            f.write(line + "\n")

    return emit
