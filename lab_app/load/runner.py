"""Running load: ``start_load`` (a handle on the current loop, for notebooks) and ``run_load``.

Pacing is open-loop, like fortio and wrk2: worker ``w``'s ``i``-th request has a scheduled
time ``start + offset_w + i * c / qps`` fixed before the run. A slow answer delays that
worker's next send (each worker keeps one request in flight on its one connection), and the
worker then catches up by sending the late slots at once (or, with ``nocatchup``, skips the
missed slots and counts them in ``skipped_slots``). Latency is recorded both from the actual
send (fortio's number) and from the scheduled send: with catch-up that is the
coordinated-omission correction; with ``nocatchup`` it is measured from the slot actually used
after skipping, and the skipped slots, which no latency represents, are reported as such.

Nothing sent disappears: a request still in flight when the run is stopped (``stop()``), cut
at its bound (schedule + timeout + 2 s) or cancelled is recorded as error class ``cancelled``
(code -1) ending at the moment of cancellation. Unlike fortio, a dead reused keep-alive socket
is not retried unless ``fortio_retry=True`` (see engine_h11.py).

The client measures its own event-loop lag while it runs: a stall of the notebook's loop shows
up as latency that the server never saw, and the lab reports it instead of hiding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import threading
import time
from array import array
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import Any, Unpack

from lab_app.errors import ConfigError
from lab_app.load.engine_h11 import H11Client
from lab_app.load.options import LoadOptions, LoadParams, make_options
from lab_app.load.records import CANCELLED, Record, RequestLog
from lab_app.load.results import LoadResults
from lab_app.load.worker_client import RequestError, WorkerClient

_LAG_INTERVAL_S = 0.02


class LagMonitor:
    """Measures how late the event loop wakes a task that sleeps ``interval`` (its oversleep)."""

    def __init__(self, perf0: float, interval: float = _LAG_INTERVAL_S) -> None:
        self.perf0 = perf0
        self.interval = interval
        self.at = array("d")  # seconds since perf0
        self.lag = array("d")  # seconds late

    async def run(self) -> None:
        interval = self.interval
        perf = time.perf_counter
        expected = perf() + interval
        while True:
            await asyncio.sleep(interval)
            now = perf()
            self.at.append(now - self.perf0)
            self.lag.append(max(0.0, now - expected))
            expected = now + interval

    def stats(self) -> dict[str, Any]:
        n = len(self.lag)
        if n == 0:
            return {"max_ms": 0.0, "p99_ms": 0.0, "samples": 0, "interval_ms": 1000 * self.interval}
        ordered = sorted(self.lag)
        per_second: dict[int, float] = {}
        for at, lag in zip(self.at, self.lag, strict=True):
            second = int(at)
            if lag > per_second.get(second, -1.0):
                per_second[second] = lag
        return {
            "max_ms": round(1000 * ordered[-1], 3),
            "p99_ms": round(1000 * ordered[max(0, math.ceil(0.99 * n) - 1)], 3),
            "samples": n,
            "interval_ms": 1000 * self.interval,
            "per_second_max_ms": [
                {"t": s, "max_ms": round(1000 * v, 3)} for s, v in sorted(per_second.items())
            ],
        }


class RecordBatch:
    """Requests ``start..stop`` of a run's log: what a subscriber receives each interval."""

    __slots__ = ("done", "log", "start", "stop")

    def __init__(self, log: RequestLog, start: int, stop: int, done: bool) -> None:
        self.log = log
        self.start = start
        self.stop = stop
        self.done = done

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[Record]:
        return self.log.records(self.start, self.stop)

    @property
    def records(self) -> list[Record]:
        return list(self)


class LoadRun:
    """A load run in progress on the current event loop.

    ``await run`` gives the final :class:`LoadResults`; ``run.stop()`` ends it early (keeping
    what was measured); ``run.results`` is a snapshot at any time; ``run.done`` tells whether it
    finished. Cancelling the awaiting task cancels the run too; either way every worker task,
    the lag monitor and every socket are gone when it returns.
    """

    def __init__(self, options: LoadOptions) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                "start_load needs a running asyncio event loop (a notebook cell or an async "
                "function); in a plain script use run_load()"
            ) from None
        self.options = options
        self.label = options.label
        self.wall0 = time.time()
        self.perf0 = time.perf_counter()
        self.log = RequestLog(self.wall0)
        self._stopping = False
        self._stopped_early = False
        self._cancel_perf: float | None = None  # when in-flight requests were cut off
        self._skipped = 0  # nocatchup: scheduled slots skipped, never sent
        self._finished = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._clients: list[WorkerClient] = []
        self._socket_serial = [0]
        self._lag = LagMonitor(self.perf0)
        self._end_perf: float | None = None
        self._cpu0 = time.process_time()
        self._cpu_end: float | None = None
        self._final: LoadResults | None = None
        self._task = self._loop.create_task(self._main(), name=f"zdlab-load {options.label}")

    # ------------------------------------------------------------------ public handle
    def __await__(self) -> Generator[Any, None, LoadResults]:
        return self._task.__await__()

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def task(self) -> asyncio.Task[LoadResults]:
        return self._task

    @property
    def requests(self) -> int:
        """Requests completed so far (cheap: no results are computed)."""
        return len(self.log)

    def stop(self, *, drain: bool = False) -> None:
        """End the run now; completed requests are kept.

        ``drain=False``: requests in flight are cut and recorded as ``cancelled`` (code -1).
        ``drain=True``: no new request is sent, and those in flight may finish within one
        request timeout (what ``fortio`` does on an interrupt); only those still running then
        become ``cancelled``. A run started "until stopped" (``duration=0``) ends as planned
        when stopped, so it is not ``stopped_early``; any other run is.
        """
        if self._task.done() or self._stopping:
            return
        self._stopping = True
        self._stopped_early = not (self.options.duration == 0 and not self.options.n)
        if drain:
            self._loop.call_later(self.options.timeout + 0.5, self._cut)
        else:
            self._cut()

    def _cut(self) -> None:
        """Cut every request still in flight (recorded as ``cancelled``)."""
        if self._task.done():
            return
        self._mark_cancel()
        for task in self._workers:
            task.cancel()

    def _mark_cancel(self) -> None:
        """Remember the first moment requests in flight were cut off (their recorded end)."""
        if self._cancel_perf is None:
            self._cancel_perf = time.perf_counter()

    def cancel(self) -> None:
        """Cancel the run's task (``await run`` then raises CancelledError)."""
        self._task.cancel()

    @property
    def results(self) -> LoadResults:
        """Final results once done, else a snapshot of what was measured so far."""
        if self._final is not None:
            return self._final
        return self._build_results(done=False)

    def snapshot(self) -> LoadResults:
        return self.results

    async def subscribe(self, interval: float = 1.0) -> AsyncIterator[RecordBatch]:
        """Yield the requests completed since the last batch, every ``interval`` seconds.

        Ends after the batch that contains the run's last request (``batch.done`` is True), so
        ``async for batch in run.subscribe()`` is bounded by the run itself.
        """
        cursor = 0
        while True:
            finished = self._finished.is_set()
            if not finished:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), interval)
                finished = self._finished.is_set()
            stop = len(self.log)
            if stop > cursor or finished:
                yield RecordBatch(self.log, cursor, stop, finished)
                cursor = stop
            if finished:
                return

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<LoadRun {self.label or self.options.url} {state} requests={len(self.log)}>"

    # ------------------------------------------------------------------ internals
    def _build_results(self, *, done: bool) -> LoadResults:
        end = self._end_perf if self._end_perf is not None else time.perf_counter()
        cpu_end = self._cpu_end if self._cpu_end is not None else time.process_time()
        return LoadResults.from_log(
            self.log,
            self.options,
            actual_duration=max(0.0, end - self.perf0),
            sockets=[client.sockets for client in self._clients],
            loop_lag=self._lag.stats(),
            done=done,
            stopped_early=self._stopped_early,
            client_cpu_s=max(0.0, cpu_end - self._cpu0),
            retried_reused=sum(client.retried_reused for client in self._clients),
            skipped_slots=self._skipped,
            connect_times=[t for client in self._clients for t in client.connect_times],
            ip_counts=_merge_counts(client.ip_counts for client in self._clients),
        )

    def _make_client(self) -> WorkerClient:
        if self.options.resolved_engine == "httpx":
            from lab_app.load.engine_httpx import HttpxClient

            return HttpxClient(self.options, self._socket_serial)
        return H11Client(self.options, self._socket_serial)

    async def _main(self) -> LoadResults:
        opts = self.options
        loop = self._loop
        lag_task: asyncio.Task[None] | None = None
        cancelled = False
        try:
            self._clients = [self._make_client() for _ in range(opts.c)]
            # Anchor the clocks when the schedule starts (client setup is not part of the run).
            self.wall0 = self.log.wall0 = time.time()
            self.perf0 = self._lag.perf0 = start = time.perf_counter()
            self._cpu0 = time.process_time()
            lag_task = loop.create_task(self._lag.run(), name="zdlab-load lag monitor")
            end = start + opts.planned_duration
            quotas = [0] * opts.c
            if opts.n:
                each, extra = divmod(opts.n, opts.c)
                quotas = [each + (1 if w < extra else 0) for w in range(opts.c)]
            self._workers = [
                loop.create_task(
                    self._worker(w, self._clients[w], start, end, quotas[w]),
                    name=f"zdlab-load worker {w}",
                )
                for w in range(opts.c)
                if not opts.n or quotas[w] > 0
            ]
            if self._stopping:  # stop() came before this task first ran
                for task in self._workers:
                    task.cancel()
            # Bounded: the schedule's end plus one timeout for the last requests in flight.
            _, pending = await asyncio.wait(
                self._workers, timeout=opts.planned_duration + opts.timeout + 2.0
            )
            if pending:
                self._stopped_early = True
                self._mark_cancel()
        except asyncio.CancelledError:
            cancelled = True
            self._stopped_early = True
            self._mark_cancel()
            raise
        finally:
            self._end_perf = time.perf_counter()
            self._cpu_end = time.process_time()
            await self._cleanup(lag_task)
            self._final = self._build_results(done=not cancelled)
            self._finished.set()
        for task in self._workers:
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                raise exc
        return self._final

    async def _cleanup(self, lag_task: asyncio.Task[None] | None) -> None:
        """Cancel workers and the lag monitor, close every socket; survives a second cancel."""
        tasks = [*self._workers] + ([lag_task] if lag_task is not None else [])
        if any(not task.done() for task in self._workers):
            self._mark_cancel()
        for task in tasks:
            task.cancel()
        if tasks:
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            try:
                await asyncio.shield(gathered)
            except asyncio.CancelledError:
                await gathered
        closes = asyncio.gather(
            *(client.aclose() for client in self._clients), return_exceptions=True
        )
        try:
            await asyncio.shield(closes)
        except asyncio.CancelledError:
            await closes

    async def _worker(
        self, w: int, client: WorkerClient, start: float, end: float, quota: int
    ) -> None:
        opts = self.options
        perf = time.perf_counter
        sleep = asyncio.sleep
        perf0 = self.perf0
        log = self.log
        append = log.append
        intern_version = log.intern_version
        intern_flags = log.intern_flags
        period = opts.c / opts.qps if opts.qps > 0 else 0.0
        offset = period * w / opts.c if opts.uniform else 0.0
        jitter = 0.1 * period if opts.jitter else 0.0
        nocatchup = opts.nocatchup
        rand = random.Random(w).uniform
        first = start + offset
        # slots that fall inside the schedule (a skipped slot past the end is not "missed")
        slots_in_schedule = math.ceil((end - first) / period - 1e-9) if period else 0
        count = 0
        i = 0
        last_version, last_ver = "", 0
        last_flags, last_flag = "", 0
        while not self._stopping:
            if period:
                sched = first + i * period
                if sched >= end or (quota and count >= quota):
                    # Like fortio, the run lasts its whole schedule: wait out the last slot so
                    # the achieved rate is measured over the requested duration.
                    delay = min(sched, end) - perf()
                    if delay > 0:
                        await sleep(delay)
                    return
                if jitter:
                    sched += rand(-jitter, jitter)
                now = perf()
                if sched > now:
                    await sleep(sched - now)
                    if self._stopping:  # stopped (draining) while waiting for this slot
                        return
                elif nocatchup and now - sched >= period:
                    # Fallen behind by at least one slot: skip the missed ones, send the latest
                    # (re-checked against the end of the schedule at the top of the loop).
                    latest = max(i + 1, int((now - first) / period))
                    self._skipped += max(0, min(latest, slots_in_schedule) - i)
                    i = latest
                    continue
            else:
                sched = perf()
                if sched >= end or (quota and count >= quota):
                    return
            sent = perf()
            try:
                await client.fetch()
            except asyncio.CancelledError:
                # Sent (or connecting) and cut off by stop/cancel: record it, never drop it.
                cut = self._cancel_perf if self._cancel_perf is not None else perf()
                append(sched - perf0, sent - perf0, max(cut, sent) - perf0, -1, CANCELLED, 0, 0,
                       w, client.conn_id, 0, 0)  # fmt: skip
                raise
            except RequestError as exc:
                ended = perf()
                code, err, ver, flag, size, hsize = -1, exc.kind, 0, 0, 0, 0
            else:
                ended = perf()
                version = client.version
                if version != last_version:
                    last_version, last_ver = version, intern_version(version)
                flags = client.flags
                if flags != last_flags:  # Envoy writes "-" for "no flags": keep it as none
                    last_flags, last_flag = flags, intern_flags("" if flags == "-" else flags)
                code, err, ver, flag = client.status, 0, last_ver, last_flag
                size, hsize = client.size, client.hsize
            append(sched - perf0, sent - perf0, ended - perf0, code, err, ver, flag, w,
                   client.conn_id, size, hsize)  # fmt: skip
            count += 1
            i += 1


def start_load(url: str, **params: Unpack[LoadParams]) -> LoadRun:
    """Start a load run on the current event loop and return its handle at once.

    The keyword arguments are :func:`~lab_app.load.options.make_options`' (defaults there).
    fortio's semantics: ``qps`` in total over ``c`` keep-alive connections (0 = as fast as
    possible), for ``duration`` (seconds or "30s"/"1m"; 0 = until stopped, capped at
    ``max_duration``) or exactly ``n`` calls. Raises ConfigError before any request on bad input.
    One difference by default: a reused keep-alive socket that dies before the first response
    byte is counted (error class ``reset_reused``); ``fortio_retry=True`` retries it once on a
    new socket as fortio's fast client does, and counts those in ``results.retried_reused``.
    """
    return LoadRun(make_options(url, **params))


def _merge_counts(counters: Iterator[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counter in counters:
        for key, n in counter.items():
            total[key] = total.get(key, 0) + n
    return total


def run_load(
    url: str,
    *,
    on_start: Callable[[LoadRun], Any] | None = None,
    stop_on_sigint: bool = True,
    **params: Unpack[LoadParams],
) -> LoadResults:
    """Run load to completion in a fresh event loop (scripts); Ctrl-C stops it with partial results.

    Takes the same keyword arguments as :func:`start_load`. ``on_start(run)`` may return a
    coroutine, which runs alongside (e.g. a progress printer) and is cancelled at the end.
    """
    options = make_options(url, **params)  # validate before creating a loop
    return run_options(options, on_start=on_start, stop_on_sigint=stop_on_sigint)


def run_options(
    options: LoadOptions,
    *,
    on_start: Callable[[LoadRun], Any] | None = None,
    stop_on_sigint: bool = True,
) -> LoadResults:
    """:func:`run_load` for options already checked (``zdlab load`` checks them before it
    opens its JSON output)."""

    async def main() -> LoadResults:
        run = LoadRun(options)
        loop = asyncio.get_running_loop()
        installed = False
        if stop_on_sigint and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGINT, run.stop)
                installed = True
        side: asyncio.Task[Any] | None = None
        try:
            if on_start is not None:
                maybe = on_start(run)
                if asyncio.iscoroutine(maybe):
                    side = loop.create_task(maybe)
            return await run
        finally:
            if side is not None:
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await side
            if installed:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(main())
