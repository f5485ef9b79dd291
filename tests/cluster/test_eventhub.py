"""The one event hub every producer uses: replay then live, thread-safe, nothing missed.

The embedded cluster, the kube backend's watch threads and a progressive cutover publish
through ``EventHub``; charts and notebooks follow any of them the same way. These tests pin
the rules its docstring promises, including the one the old async-generator subscriptions
broke: a subscriber registers when ``subscribe()`` is *called*, so an event published between
that call and the first iteration is not lost.
"""

from __future__ import annotations

import asyncio
import threading

from lab_app.cluster.events import EventHub, EventKind


async def _take(stream, n: int, timeout: float = 5.0) -> list[str]:
    out: list[str] = []

    async def read() -> None:
        async for event in stream:
            out.append(event.message)
            if len(out) == n:
                return

    await asyncio.wait_for(read(), timeout)
    return out


async def test_replay_then_live_and_nothing_missed_before_the_first_read() -> None:
    hub = EventHub()
    hub.emit(EventKind.NOTE, "lab", "one")
    stream = hub.subscribe()  # registered now, not at the first iteration
    hub.emit(EventKind.NOTE, "lab", "two")
    hub.emit(EventKind.NOTE, "lab", "three")
    assert await _take(stream, 3) == ["one", "two", "three"]


async def test_since_skips_older_events_and_close_ends_the_stream() -> None:
    hub = EventHub()
    first = hub.emit(EventKind.NOTE, "lab", "old")
    stream = hub.subscribe(since=first.t)
    hub.emit(EventKind.NOTE, "lab", "new")
    hub.close()
    assert [e.message async for e in stream] == ["new"]
    late = hub.subscribe()  # a closed hub: the replay, then the end
    assert [e.message async for e in late] == ["old", "new"]


async def test_events_from_another_thread_arrive_in_order() -> None:
    hub = EventHub()
    stream = hub.subscribe()

    def produce() -> None:
        for i in range(200):
            hub.emit(EventKind.NOTE, "watch", str(i))

    worker = threading.Thread(target=produce)
    worker.start()
    got = await _take(stream, 200)
    worker.join()
    assert got == [str(i) for i in range(200)]
    assert [e.message for e in hub.events()] == got


async def test_the_log_keeps_the_newest_events() -> None:
    hub = EventHub(keep=3)
    for i in range(5):
        hub.emit(EventKind.NOTE, "lab", str(i))
    assert [e.message for e in hub.events()] == ["2", "3", "4"]
