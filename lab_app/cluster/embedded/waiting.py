"""Waiting with a deadline without losing a cancellation.

Python 3.11's ``asyncio.wait_for`` swallows a ``cancel()`` that arrives in the same loop
iteration as the awaited thing completes (fixed in 3.12, which rebuilt it on
``asyncio.timeout``). The cluster's long-lived loops are cancelled on ``close()`` while they
wait on events that fire all the time, so they hit that race and never stop. These helpers use
``asyncio.timeout`` directly, which delivers the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set; False if ``timeout`` seconds passed first."""
    if event.is_set():
        return True
    return await wait_done(event.wait(), timeout)


async def wait_done(aw: Awaitable[Any], timeout: float | None) -> bool:
    """Await ``aw``; False if ``timeout`` seconds passed first (``aw`` is then cancelled)."""
    try:
        async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
            await aw
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended, whatever it raises."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
