"""Small helpers shared by the test suites.

Tests wait on *conditions* with a deadline, never on a fixed ``sleep``: a fixed sleep is either
too short on a loaded CI machine (flaky) or too long everywhere else (slow).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

T = TypeVar("T")
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Raises ``TimeoutError`` naming ``message`` (and the last exception the predicate raised,
    if any) when ``timeout`` seconds pass first. ``interval`` is only the polling period.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:  # a predicate may fail until the condition holds
            last_error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{message} not met within {timeout:g} s{detail}")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    *,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """The async ``wait_until``: await until ``predicate()`` (which may be async) is truthy."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # may fail until the condition holds
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{message} not met within {timeout:g}s" + (f" ({last!r})" if last else "")
            )
        await asyncio.sleep(interval)


def manifest(name: str) -> dict[str, Any]:
    """A fresh, mutable copy of one of the repo's manifests (tests change them in memory)."""
    return copy.deepcopy(yaml.safe_load((MANIFESTS / name).read_text()))


def alive(pids: Iterable[int]) -> list[int]:
    """The pids that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out
