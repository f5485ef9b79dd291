"""Fixtures for the reliability tests: real clusters, closed and checked after each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_testlib import ISTIO, alive, eventually, manifest, one_replica

from lab_app.cluster.embedded import EmbeddedCluster


async def _closed_and_gone(cluster: EmbeddedCluster) -> None:
    pids = set(cluster.processes().values())
    await cluster.close()
    await eventually(lambda: not alive(pids), 10, message="every lab process gone after close()")


@pytest.fixture
async def istio_cluster() -> AsyncIterator[EmbeddedCluster]:
    """Gateway + kube-proxy + one pod with its sidecar, fast crash back-off (x0.05)."""
    cluster = await EmbeddedCluster.start(crash_backoff_scale=0.05, propagation_delay=0.3)
    try:
        for name in ISTIO:
            await cluster.apply(one_replica() if name == "deployment.yaml" else manifest(name))
        await cluster.wait_rollout("zero-downtime-rollingupdate", timeout=60)
        await cluster.config_settled()
        yield cluster
    finally:
        await _closed_and_gone(cluster)


@pytest.fixture
async def plain_cluster() -> AsyncIterator[EmbeddedCluster]:
    """No sidecars, fast crash back-off (x0.05): for faults of the pods themselves."""
    cluster = await EmbeddedCluster.start(
        sidecar_injection=False, crash_backoff_scale=0.05, propagation_delay=0.3
    )
    try:
        yield cluster
    finally:
        await _closed_and_gone(cluster)
