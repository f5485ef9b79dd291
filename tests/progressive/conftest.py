"""Fixtures for the progressive-delivery tests: a real embedded cluster and load runs, both
stopped (and checked gone) after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.load import LoadRun, start_load
from tests.helpers import NO_SIDECARS, embedded_cluster


@pytest.fixture
async def cluster() -> AsyncIterator[EmbeddedCluster]:
    """An embedded cluster without sidecars (the gateway routes straight to the pods)."""
    async with embedded_cluster(**NO_SIDECARS, propagation_delay=0.5) as c:
        yield c


@pytest.fixture
async def load() -> AsyncIterator[Callable[..., LoadRun]]:
    """``load(url, qps=...)``: an open-ended load run (bounded at 120 s), stopped at the end."""
    runs: list[LoadRun] = []

    def make(url: str, qps: float = 200.0, **options: Any) -> LoadRun:
        run = start_load(url, qps=qps, c=8, duration=0, max_duration=120, **options)
        runs.append(run)
        return run

    try:
        yield make
    finally:
        for run in runs:
            run.stop()
        for run in runs:
            await run
