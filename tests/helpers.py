"""Small helpers shared by the test suites.

Tests wait on *conditions* with a deadline, never on a fixed ``sleep``: a fixed sleep is either
too short on a loaded CI machine (flaky) or too long everywhere else (slow).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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
