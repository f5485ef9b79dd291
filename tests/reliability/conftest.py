"""Fixtures for the reliability tests: real clusters, closed and checked after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from reliability_testlib import APP, ISTIO, manifest, one_replica

from lab_app.cluster.embedded import EmbeddedCluster
from tests.helpers import NO_SIDECARS, embedded_cluster


@pytest.fixture
async def istio_cluster() -> AsyncIterator[EmbeddedCluster]:
    """Gateway + kube-proxy + one pod with its sidecar, fast crash back-off (x0.05)."""
    async with embedded_cluster(crash_backoff_scale=0.05, propagation_delay=0.3) as cluster:
        for name in ISTIO:
            await cluster.apply(one_replica() if name == "deployment.yaml" else manifest(name))
        await cluster.wait_rollout(APP, timeout=60)
        await cluster.config_settled()
        yield cluster


@pytest.fixture
async def plain_cluster() -> AsyncIterator[EmbeddedCluster]:
    """No sidecars, fast crash back-off (x0.05): for faults of the pods themselves."""
    async with embedded_cluster(**NO_SIDECARS, propagation_delay=0.3) as cluster:
        yield cluster
