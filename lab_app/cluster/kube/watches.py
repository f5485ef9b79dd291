"""Watches in background threads feeding the lab's event list and live subscribers.

The ``kubernetes`` client is blocking, so each watch (pods, EndpointSlices, Deployments,
core Events) runs in its own thread: list once to learn the current state and a
resourceVersion, then watch from there, resuming from the last version when the server
ends the watch and listing again after ``410 Gone``. Events go to an ``EventHub`` that
hands them to asyncio subscribers with ``call_soon_threadsafe``, so the notebook's loop
never blocks. ``stop()`` shuts the watch's socket (``Watch.stop``) so a thread blocked
in a read ends at once instead of at the server's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.events import Event, EventKind

WATCH_SECONDS = 240  # server-side timeoutSeconds of one watch request
_END = object()


class EventHub:
    """Thread-safe event log plus fan-out to asyncio subscribers."""

    def __init__(self, keep: int = 100_000) -> None:
        self._events: list[Event] = []
        self._keep = keep
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = set()
        self._closed = False

    def publish(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            if len(self._events) > self._keep:
                del self._events[: len(self._events) - self._keep]
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(queue.put_nowait, event)

    def events(self, since: float | None = None) -> list[Event]:
        with self._lock:
            events = list(self._events)
        if since is None:
            return events
        return [e for e in events if e.t > since]

    async def subscribe(self) -> AsyncIterator[Event]:
        """Events published from now on, until ``close()``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        entry = (loop, queue)
        with self._lock:
            if self._closed:
                return
            self._subscribers.add(entry)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                yield item
        finally:
            with self._lock:
                self._subscribers.discard(entry)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, _END)


class Tracker(Protocol):
    def resync(self, items: list[Any], now: float, *, initial: bool) -> list[Event]: ...

    def update(self, kind: str, obj: Any, now: float) -> list[Event]: ...


class WatchLoop:
    """One list+watch of a namespaced collection, delivering tracker events to a hub."""

    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        namespace: str,
        tracker: Tracker,
        hub: EventHub,
        *,
        watch_seconds: int = WATCH_SECONDS,
        ready: threading.Event | None = None,
    ) -> None:
        self.name = name
        self._list = list_func
        self._namespace = namespace
        self._tracker = tracker
        self._hub = hub
        self._watch_seconds = watch_seconds
        self._stop = threading.Event()
        self._watcher: k8s_watch.Watch | None = None
        self._lock = threading.Lock()
        self.ready = ready or threading.Event()  # set after the first list
        self.error: str = ""
        self._thread = threading.Thread(target=self._run, name=f"zdlab-watch-{name}", daemon=True)

    def start(self) -> WatchLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            watcher.stop()

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
            self._hub.publish(event)

    def _run(self) -> None:
        initial = True
        failures = 0
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = self._list(self._namespace, _request_timeout=(10, 60))
                    self._publish(
                        self._tracker.resync(listing.items or [], time.time(), initial=initial)
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
            self._hub.publish(
                Event(EventKind.NOTE, f"watch/{self.name}", f"watch failed: {reason}; retrying")
            )

    def _watch_once(self, resource_version: str) -> str | None:
        watcher = k8s_watch.Watch()
        with self._lock:
            if self._stop.is_set():
                return resource_version
            self._watcher = watcher
        try:
            for event in watcher.stream(
                self._list,
                self._namespace,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_seconds,
                _request_timeout=(10, self._watch_seconds + 30),
            ):
                if self._stop.is_set():
                    break
                kind = event["type"]
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._publish(self._tracker.update(kind, event["object"], time.time()))
        finally:
            with self._lock:
                self._watcher = None
        return watcher.resource_version or resource_version
