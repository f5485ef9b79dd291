"""Fixtures for the embedded cluster's tests: a real cluster, closed and checked after each."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cluster_testlib import alive, eventually

from lab_app.cluster.embedded import EmbeddedCluster


@pytest.fixture
async def lab_cluster() -> AsyncIterator[EmbeddedCluster]:
    """An embedded cluster without sidecars, fast crash back-off, half-second kube-proxy lag."""
    cluster = await EmbeddedCluster.start(
        sidecar_injection=False, crash_backoff_scale=0.05, propagation_delay=0.5
    )
    try:
        yield cluster
    finally:
        pids = set(cluster.processes().values())
        await cluster.close()
        await eventually(lambda: not alive(pids), 10, message="every lab process gone")
