"""Fixtures for the load generator's tests: a real local HTTP server and a free closed port."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from target_server import TargetServer


@pytest.fixture(scope="module")
def server() -> Iterator[TargetServer]:
    """One target for a test module (tests read its request counter as a difference)."""
    srv = TargetServer("v1")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., TargetServer]]:
    """Fresh targets for tests that kill theirs; all are stopped at the end."""
    started: list[TargetServer] = []

    def make(version: str = "v1") -> TargetServer:
        srv = TargetServer(version)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
