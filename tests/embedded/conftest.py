"""Fixtures for the embedded cluster's tests: a real cluster, closed and checked after each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lab_app.cluster.embedded import EmbeddedCluster
from tests.helpers import NO_SIDECARS, embedded_cluster


@pytest.fixture
async def lab_cluster() -> AsyncIterator[EmbeddedCluster]:
    """An embedded cluster without sidecars, fast crash back-off, half-second kube-proxy lag."""
    async with embedded_cluster(**NO_SIDECARS, propagation_delay=0.5) as cluster:
        yield cluster
