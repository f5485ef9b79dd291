"""Small helpers shared by the test suites.

Tests wait on *conditions* with a deadline, never on a fixed ``sleep``: a fixed sleep is either
too short on a loaded CI machine (flaky) or too long everywhere else (slow).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psutil
import yaml

if TYPE_CHECKING:
    from lab_app.cluster.embedded import EmbeddedCluster

T = TypeVar("T")
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
#: The original demo on Istio, in the order ``kubectl apply`` takes it: one Deployment behind
#: the ingress gateway, its DestinationRule and a VirtualService (sidecars injected).
ISTIO = [
    "namespace.yaml",
    "configmap.yaml",
    "service.yaml",
    "deployment.yaml",
    "istio/destinationrule.yaml",
    "istio/gateway.yaml",
    "istio/virtualservice.yaml",
]
#: Embedded-cluster options of the tests that fault the pods themselves: no sidecars (the
#: gateway and kube-proxy reach the pods directly) and a crash back-off 20 times shorter.
NO_SIDECARS: dict[str, Any] = {"sidecar_injection": False, "crash_backoff_scale": 0.05}


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


@contextlib.asynccontextmanager
async def embedded_cluster(**options: Any) -> AsyncIterator[EmbeddedCluster]:
    """A started ``EmbeddedCluster(**options)``, closed at the end, with every process it ran
    checked gone: a leaked Envoy or pod would hold ports and CPU for the tests after it."""
    from lab_app.cluster.embedded import EmbeddedCluster

    cluster = await EmbeddedCluster.start(**options)
    try:
        yield cluster
    finally:
        pids = set(cluster.processes().values())
        await cluster.close()
        await eventually(lambda: not alive(pids), 10, message="every lab process gone")


class Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)


@contextlib.contextmanager
def stopping(server: S) -> Iterator[S]:
    """``server``, stopped at the end however the block ends (a test server's fixture)."""
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
