"""The chart tests reuse the load tests' real target server (tests/load/target_server.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "load"))

from target_server import TargetServer

from tests import helpers


@pytest.fixture(scope="module")
def chart_server() -> Iterator[TargetServer]:
    with helpers.stopping(TargetServer("v1")) as srv:
        yield srv
