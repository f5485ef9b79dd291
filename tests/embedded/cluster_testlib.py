"""Helpers for the embedded cluster's tests (a module name of its own: test directories
share one import namespace)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    *,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Await until ``predicate()`` is truthy (it may be async); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
                value = await value  # type: ignore[misc]
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
    return copy.deepcopy(yaml.safe_load((MANIFESTS / name).read_text()))


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def alive(pids: list[int] | set[int]) -> list[int]:
    """The pids that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def descendants() -> list[psutil.Process]:
    """This test process's live children (the lab's processes are its children)."""
    return [
        p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE
    ]
