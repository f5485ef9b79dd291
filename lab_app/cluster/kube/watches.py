"""Watches in background threads feeding the lab's event list and live subscribers.

The ``kubernetes`` client is blocking, so each watch (pods, EndpointSlices, Deployments,
core Events) runs in its own thread: list once to learn the current state and a
resourceVersion, then watch from there. Bookmarks (``allowWatchBookmarks``) keep the
version the client resumes from fresh while nothing the watch selects changes, so a
reconnect after a quiet spell does not start from a version the server has compacted away.
When the server ends a watch it is resumed from the last version seen; when the server
answers ``410 Gone`` (the version is older than the history it keeps, as an ERROR event
in the stream or as the HTTP status: the client raises ``ApiException(410)`` for both),
the collection is listed again and the tracker diffs the fresh list against what it
knew (``resync``), so a change made while the watch was away is reported once and none
is lost or repeated. Events go to the shared ``EventHub`` (``lab_app.cluster.events``),
which hands them to asyncio subscribers thread-safely, so the notebook's loop never
blocks. ``stop()`` shuts the watch's socket (``Watch.stop``) so a thread blocked in a read
ends at once instead of at the server's timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.events import Event, EventHub, EventKind
from lab_app.cluster.kube.client import KubeClients, new_watch, stop_watch, watch_stream
from lab_app.cluster.kube.eventmap import (
    CoreEventMapper,
    DeploymentTracker,
    EndpointTracker,
    PodTracker,
)

WATCH_SECONDS = 240  # server-side timeoutSeconds of one watch request


class Tracker(Protocol):
    def resync(self, items: list[Any], now: float, *, initial: bool) -> list[Event]: ...

    def update(self, kind: str, obj: Any, now: float) -> list[Event]: ...


@dataclass(eq=False, repr=False)
class WatchLoop:
    """One list+watch of a namespaced collection, delivering tracker events to a hub."""

    name: str
    list_func: Callable[..., Any]
    namespace: str
    tracker: Tracker
    hub: EventHub
    _: KW_ONLY
    watch_seconds: int = WATCH_SECONDS
    ready: threading.Event = field(default_factory=threading.Event)  # set after the first list
    error: str = field(default="", init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _watcher: k8s_watch.Watch | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"zdlab-watch-{self.name}", daemon=True
        )

    def start(self) -> WatchLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            stop_watch(watcher)

    def join(self, timeout: float) -> bool:
        """Wait for the thread, repeating ``stop()``: a watch whose response had not arrived
        at the first ``Watch.stop()`` had no socket to shut yet, it has one now."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.stop()
            self._thread.join(0.05)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self.hub.publish(event)

    def _run(self) -> None:
        initial = True
        failures = 0
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = self.list_func(self.namespace, _request_timeout=(10, 60))
                    self._publish(
                        self.tracker.resync(listing.items or [], time.time(), initial=initial)
                    )
                    initial = False
                    resource_version = listing.metadata.resource_version
                    self.ready.set()
                resource_version = self._watch_once(resource_version)
                failures = 0
            except ApiException as exc:
                if self._stop.is_set():
                    break
                if exc.status == 410:  # too old: list again and diff
                    resource_version = None
                    continue
                failures += 1
                self._fail(f"HTTP {exc.status} {exc.reason or ''}".strip(), failures)
                resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                failures += 1
                self._fail(type(exc).__name__, failures)
            if failures:
                self._stop.wait(min(30.0, 0.5 * 2**failures))
        self.ready.set()

    def _fail(self, reason: str, failures: int) -> None:
        self.error = reason
        self.ready.set()
        if failures == 1:  # say it once per outage, not on every retry
            self.hub.publish(
                Event(EventKind.NOTE, f"watch/{self.name}", f"watch failed: {reason}; retrying")
            )

    def _watch_once(self, resource_version: str) -> str | None:
        watcher = new_watch()
        with self._lock:
            if self._stop.is_set():
                return resource_version
            self._watcher = watcher
        try:
            for event in watch_stream(
                watcher,
                self.list_func,
                self.namespace,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds,
                _request_timeout=(10, self.watch_seconds + 30),
            ):
                if self._stop.is_set():
                    break
                kind = event["type"]
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._publish(self.tracker.update(kind, event["object"], time.time()))
        finally:
            with self._lock:
                self._watcher = None
        return watcher.resource_version or resource_version


def start_namespace_watches(
    clients: KubeClients,
    namespace: str,
    hub: EventHub,
    pods: PodTracker,
    ready_timeout: float = 15.0,
) -> list[WatchLoop]:
    """Start the four watches of ``KubeCluster`` (pods, EndpointSlices, Deployments, core
    Events); returns once each has listed its collection (or ``ready_timeout`` passed), so
    every later change is reported."""
    loops = [
        WatchLoop("pods", clients.core.list_namespaced_pod, namespace, pods, hub),
        WatchLoop(
            "endpointslices",
            clients.discovery.list_namespaced_endpoint_slice,
            namespace,
            EndpointTracker(),
            hub,
        ),
        WatchLoop(
            "deployments",
            clients.apps.list_namespaced_deployment,
            namespace,
            DeploymentTracker(),
            hub,
        ),
        WatchLoop(
            "events", clients.core.list_namespaced_event, namespace, CoreEventMapper(pods), hub
        ),
    ]
    for loop in loops:
        loop.start()
    deadline = time.monotonic() + ready_timeout
    for loop in loops:
        loop.ready.wait(max(0.0, deadline - time.monotonic()))
    return loops
