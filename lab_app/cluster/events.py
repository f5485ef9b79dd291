"""The timestamped events both backends emit, so charts and tests can mark them.

Timestamps are wall-clock seconds (``time.time()``), the same clock the load
generator stamps its requests with, so an event can be drawn on a load chart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    POD_CREATED = "PodCreated"
    POD_STARTED = "PodStarted"  # the container's process is running
    POD_READY = "PodReady"  # readiness probe passed
    POD_NOT_READY = "PodNotReady"
    POD_TERMINATING = "PodTerminating"  # deletion started (endpoint removal starts too)
    PRESTOP_STARTED = "PreStopStarted"
    PRESTOP_FINISHED = "PreStopFinished"
    SIGTERM = "SIGTERM"
    SIGKILL = "SIGKILL"
    OOM_KILLED = "OOMKilled"
    CONTAINER_EXITED = "ContainerExited"
    RESTARTED = "Restarted"
    POD_DELETED = "PodDeleted"
    PROBE_FAILED = "ProbeFailed"
    ENDPOINT_ADDED = "EndpointAdded"
    ENDPOINT_REMOVED = "EndpointRemoved"
    CONFIG_PUSHED = "ConfigPushed"  # a proxy accepted new config
    CONFIG_REJECTED = "ConfigRejected"
    CONFIG_WARNING = "ConfigWarning"  # accepted but suspect: IST0101, a deprecated API
    WEIGHTS_CHANGED = "WeightsChanged"
    ROLLOUT_STARTED = "RolloutStarted"
    ROLLOUT_COMPLETE = "RolloutComplete"
    SCALED = "Scaled"
    PROXY_CRASHED = "ProxyCrashed"
    PROXY_RESTARTED = "ProxyRestarted"
    SIDECAR_DRAIN_STARTED = "SidecarDrainStarted"
    SIDECAR_EXITED = "SidecarExited"
    DECISION = "Decision"  # progressive delivery: promote / hold / rollback
    NOTE = "Note"  # anything a caller adds by hand


@dataclass(frozen=True)
class Event:
    """One thing that happened, at wall-clock time ``t``, to object ``obj``."""

    kind: str
    obj: str
    message: str = ""
    t: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(self.t)) + f".{int(self.t * 1000) % 1000:03d}"
        )
        return f"{stamp} {self.kind:<18} {self.obj} {self.message}".rstrip()


_END = object()


class EventHub:
    """One event log for every producer: the embedded cluster, the kube watches, a cutover.

    Why one: a chart, a test or a notebook follows events the same way whatever produced
    them. The rules, in one place:

    * ``publish`` may be called from any thread (the kube backend's watch threads) or the
      event loop; the log keeps the newest ``keep`` events;
    * ``subscribe(since)`` replays the logged events newer than ``since`` (all of them when
      ``since`` is None), then yields each new one, until ``close()``. It registers when it is
      *called*, under the same lock as ``publish``: a subscriber never misses an event
      published after that call, and never sees one twice;
    * a subscriber on a closed hub gets the replay, then the end.
    """

    def __init__(
        self, keep: int = 100_000, observe: Callable[[Event], object] | None = None
    ) -> None:
        self._events: list[Event] = []
        self._keep = keep
        self._observe = observe  # called with each event after it is published
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, event: Event) -> Event:
        with self._lock:
            self._events.append(event)
            if len(self._events) > self._keep:
                del self._events[: len(self._events) - self._keep]
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            _deliver(loop, queue, event)
        if self._observe is not None:
            self._observe(event)
        return event

    def emit(
        self,
        kind: EventKind | str,
        obj: str,
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Build an ``Event`` stamped now and publish it."""
        return self.publish(
            Event(kind=str(kind), obj=obj, message=message, t=time.time(), data=dict(data or {}))
        )

    def events(self, since: float | None = None) -> list[Event]:
        """The logged events, those after wall-clock ``since`` if given."""
        with self._lock:
            events = list(self._events)
        return events if since is None else [e for e in events if e.t > since]

    def subscribe(self, since: float | None = None) -> AsyncIterator[Event]:
        """Replay (events after ``since``; all if None), then live events until ``close()``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        entry = (loop, queue)
        with self._lock:
            for event in self._events:
                if since is None or event.t > since:
                    queue.put_nowait(event)
            if self._closed:
                queue.put_nowait(_END)
            else:
                self._subscribers.add(entry)

        async def stream() -> AsyncIterator[Event]:
            try:
                while (item := await queue.get()) is not _END:
                    yield item
            finally:
                with self._lock:
                    self._subscribers.discard(entry)

        return stream()

    def close(self) -> None:
        """End every subscription (after the events already queued for it)."""
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for loop, queue in subscribers:
            _deliver(loop, queue, _END)


def _deliver(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], item: object) -> None:
    """Put ``item`` on a subscriber's queue from whichever thread publishes."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        queue.put_nowait(item)
        return
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody reads any more
        loop.call_soon_threadsafe(queue.put_nowait, item)
