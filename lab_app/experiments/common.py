"""What every experiment shares: manifests, the cluster it runs on, load runs, interruption.

Why: each experiment is a short script of cluster operations under load, and the notebooks,
the CLI and the tests run the very same code. This module keeps the plumbing out of those
scripts: finding ``manifests/`` (``ZDLAB_MANIFESTS`` or the repo next to the package),
owning a cluster or borrowing the caller's, waiting for a URL to answer, stopping on Ctrl-C
with the partial results kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lab_app.cluster import Cluster, connect
from lab_app.errors import ConfigError, LabError
from lab_app.manifests.names import DEFAULT_SERVICE
from lab_app.paths import MANIFESTS_DIR

T = TypeVar("T")
APP = DEFAULT_SERVICE


class Interrupted(Exception):
    """The experiment was asked to stop (Ctrl-C in the CLI, ``stop`` set by a notebook)."""


def manifests_dir() -> Path:
    """The repo's ``manifests/``: ``$ZDLAB_MANIFESTS`` if set, else next to the package."""
    env = os.environ.get("ZDLAB_MANIFESTS", "").strip()
    candidates = [Path(env)] if env else []
    candidates.append(MANIFESTS_DIR)
    candidates.append(Path.cwd() / "manifests")
    for path in candidates:
        if (path / "deployment.yaml").is_file():
            return path
    raise ConfigError(
        "cannot find the lab's manifests/ directory (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); set ZDLAB_MANIFESTS to it"
    )


def manifest(name: str) -> dict[str, Any]:
    """One manifest file of ``manifests/`` as a dict (a deep copy: safe to override)."""
    path = manifests_dir() / name
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except FileNotFoundError:
        raise ConfigError(f"manifest {path} does not exist") from None
    if len(docs) != 1:
        raise ConfigError(f"{path}: expected one document, found {len(docs)}")
    return copy.deepcopy(docs[0])


def manifest_path(name: str) -> Path:
    return manifests_dir() / name


def app_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def set_env(deployment: dict[str, Any], name: str, value: str) -> None:
    """Override (or add) one ``env`` entry of the app container."""
    env = app_container(deployment).setdefault("env", [])
    for item in env:
        if item.get("name") == name:
            item.clear()
            item.update({"name": name, "value": value})
            return
    env.append({"name": name, "value": value})


class Stopper:
    """Raises ``Interrupted`` from the experiment's waits once ``event`` is set."""

    def __init__(self, event: asyncio.Event | None = None) -> None:
        self.event = event or asyncio.Event()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted()

    async def run(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` unless a stop comes first (then cancel it and raise Interrupted)."""
        self.check()
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise Interrupted()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self.run(asyncio.sleep(seconds))
        else:
            self.check()

    async def until(self, when: float) -> None:
        """Sleep until wall-clock time ``when``."""
        await self.sleep(when - time.time())


@contextlib.asynccontextmanager
async def use_cluster(
    cluster: Cluster | None, options: Mapping[str, Any]
) -> AsyncIterator[tuple[Cluster, bool]]:
    """Yield ``(cluster, owned)``: the caller's cluster, or a new one closed at the end."""
    if cluster is not None:
        yield cluster, False
        return
    own = await connect(**dict(options))
    try:
        yield own, True
    finally:
        await own.close()


async def wait_http_ok(url: str, timeout: float = 30.0, stopper: Stopper | None = None) -> float:
    """Poll ``url`` until it answers 2xx; returns the seconds it took (LabError on timeout).

    Used to know that a route or an endpoint has reached the proxies before load starts.
    """
    import httpx

    start = time.monotonic()
    deadline = start + timeout
    last = ""
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while True:
            if stopper is not None:
                stopper.check()
            try:
                response = await client.get(url, headers={"connection": "close"})
                if 200 <= response.status_code < 300:
                    return time.monotonic() - start
                last = f"HTTP {response.status_code} {response.headers.get('x-envoy-flags', '')}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise LabError(f"{url} did not answer 2xx within {timeout:g}s (last: {last})")
            await asyncio.sleep(0.05)


async def settle(cluster: Cluster, timeout: float = 30.0) -> None:
    """Wait until the proxies hold what was applied (``Cluster.config_settled``)."""
    await cluster.config_settled(timeout)


def records_between(results: Any, start: float, end: float) -> Iterable[Any]:
    """The load records whose request was *sent* in [start, end) (wall-clock)."""
    log = getattr(results, "records", None)
    if log is None:
        return []
    return (r for r in log.records() if start <= r.sent < end)


def first_event_after(
    cluster: Cluster, kind: str, t: float, obj: str | None = None, reason: str | None = None
) -> Any:
    for event in cluster.events(since=t):
        if event.kind != kind or (obj is not None and event.obj != obj):
            continue
        if reason is not None and reason not in str(event.data.get("reason", "")):
            continue
        return event
    return None
