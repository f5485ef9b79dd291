"""Helpers shared by the load and chart tests (imported by name: pytest puts this folder on
sys.path)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import psutil


def connections_to(port: int) -> list:
    """This process's TCP sockets whose remote end is 127.0.0.1:port (any state)."""
    return [
        c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    ]


def other_tasks() -> set[asyncio.Task]:
    """Every task on the running loop except the test's own."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> None:
    """Poll ``predicate`` (plain or async) on the loop until it is true; fail with ``what``
    after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await _truth(predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def _truth(value: bool | Awaitable[bool]) -> bool:
    return bool(await value) if inspect.isawaitable(value) else bool(value)


def wait_until_sync(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
