"""Fixtures for the demo service's tests: real service processes on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests.*` imports when pytest is not run as `python -m`
    sys.path.insert(0, str(REPO_ROOT))

from tests.service.processes import ServiceProcess, StartService, service_env  # noqa: E402


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """``start_service(ready=True, port=0, **ENV)`` -> a started :class:`ServiceProcess`;
    every process started is killed (if still running) when the test ends."""
    started: list[ServiceProcess] = []

    def start(*, ready: bool = True, port: int = 0, **env: str) -> ServiceProcess:
        service = ServiceProcess(service_env(**env), port=port)
        started.append(service)
        if ready:
            service.wait_ready()
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def running_service() -> Iterator[ServiceProcess]:
    """One service with the fault endpoints on, shared by a module's read-only checks."""
    service = ServiceProcess(
        service_env(
            ENABLE_FAULT_ENDPOINTS="true",
            APP_VERSION="v7",
            POD_NAME="pod-under-test",
            IMAGE_ID="img-123",
            KEEPALIVE_SECONDS="1",
        )
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
