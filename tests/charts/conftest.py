"""The chart tests reuse the load tests' real target server (tests/load/target_server.py)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "load"))

from target_server import TargetServer


@pytest.fixture(scope="module")
def chart_server() -> Iterator[TargetServer]:
    srv = TargetServer("v1")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
