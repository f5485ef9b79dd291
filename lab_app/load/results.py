"""What a load run measured, in fortio's vocabulary (report text and JSON) plus the lab's extras.

``LoadResults`` is a snapshot: built from a run's request log (``from_log``) or from a fortio
JSON file (``from_fortio_json``); both paths fill the same fields, so ``to_fortio_json`` after
``from_fortio_json`` gives back the same document. The extras fortio lacks (error classes,
latency from the scheduled send, responding versions, per-second timeline, the client's own
event-loop lag, retried/skipped counts) are fields here and travel in the JSON under ``zdlab``.

This module holds the numbers; the work on them lives beside it: histograms.py (fortio's
buckets and the percentiles), report.py (fortio's text report) and fortio_json.py (fortio's
JSON document, both ways).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from lab_app.load import fortio_json, report
from lab_app.load.fortio_json import FORTIO_JSON_VERSION
from lab_app.load.histograms import (
    DURATION_DIVIDER,
    HEADER_SIZES_DIVIDER,
    SIZES_DIVIDER,
    hdr_percentiles,
    histogram_data,
    percentile_map,
)
from lab_app.load.options import DEFAULT_PERCENTILES, LoadOptions
from lab_app.load.records import ERROR_CLASSES, ERROR_NAMES, RequestLog, is_success
from lab_app.load.timeline import Timeline, rows_to_frame

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class LoadResults:
    """A run's results: fortio's numbers plus error classes, versions, timeline and loop lag.

    Times are seconds (wall-clock for ``start_time``); ``codes`` uses fortio's -1 for every
    transport error, ``errors`` keeps them apart by class (``reset_reused``: a reused
    keep-alive socket died before the first response byte; ``cancelled``: in flight when the
    run was stopped). ``retried_reused`` counts requests that ``fortio_retry`` retried once on
    a new socket (errors fortio would have hidden); ``skipped_slots`` the scheduled sends that
    ``nocatchup`` skipped. ``sizes`` is fortio's ``Sizes`` (header + body bytes, as fortio's fast
    client counts), ``header_sizes`` includes the status line.
    """

    url: str
    label: str = ""
    start_time: float = 0.0
    requested_qps: float = 8.0
    requested_duration: float = 5.0  # seconds; 0 = until stopped
    exactly: int = 0
    num_threads: int = 4
    uniform: bool = False
    jitter: bool = False
    nocatchup: bool = False
    timeout: float = 3.0
    requested_percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    actual_duration: float = 0.0
    requests: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    by_version: dict[str, int] = field(default_factory=dict)
    by_flags: dict[str, int] = field(default_factory=dict)
    sockets: list[int] = field(default_factory=list)
    duration_histogram: dict[str, Any] = field(default_factory=dict)
    errors_duration_histogram: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    header_sizes: dict[str, Any] = field(default_factory=dict)
    corrected_percentiles: list[dict[str, float]] = field(default_factory=list)
    loop_lag: dict[str, Any] = field(default_factory=dict)
    timeline_rows: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "h11"
    done: bool = True
    stopped_early: bool = False
    client_cpu_s: float = 0.0  # CPU time of the whole client process during the run
    fortio_retry: bool = False
    retried_reused: int = 0
    skipped_slots: int = 0
    ip_count_map: dict[str, int] = field(default_factory=dict)
    connection_stats: dict[str, Any] = field(default_factory=dict)
    records: RequestLog | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_log(
        cls,
        log: RequestLog,
        options: LoadOptions,
        *,
        actual_duration: float,
        sockets: list[int],
        loop_lag: dict[str, Any],
        done: bool,
        stopped_early: bool = False,
        client_cpu_s: float = 0.0,
        retried_reused: int = 0,
        skipped_slots: int = 0,
        connect_times: Sequence[float] = (),
        ip_counts: dict[str, int] | None = None,
    ) -> LoadResults:
        n = len(log)
        send, end, sched, code_col, err_col = log.send, log.end, log.sched, log.code, log.err
        latencies = [end[i] - send[i] for i in range(n)]
        corrected = [end[i] - sched[i] for i in range(n)]
        codes = Counter(code_col[:n])
        err_counts = Counter(err_col[:n])
        errors = {name: err_counts.get(i + 1, 0) for i, name in enumerate(ERROR_CLASSES)}
        versions = Counter(log.ver[:n])
        flags = Counter(log.flag[:n])
        by_version = {log.version_names[k] or "?": v for k, v in sorted(versions.items())}
        by_flags = {log.flag_names[k]: v for k, v in sorted(flags.items()) if log.flag_names[k]}
        error_latencies = [latencies[i] for i in range(n) if not is_success(code_col[i])]
        delays = sorted(max(0.0, send[i] - sched[i]) for i in range(n))
        loop_lag = dict(loop_lag)
        if delays:
            # How late sends left against their schedule: client-side delay that only the
            # corrected latency includes (timer granularity, loop lag, a worker falling behind).
            loop_lag["send_delay_ms"] = {
                "p50": round(1000 * delays[(n - 1) // 2], 3),
                "p99": round(1000 * delays[max(0, math.ceil(0.99 * n) - 1)], 3),
                "max": round(1000 * delays[-1], 3),
            }
        timeline = Timeline(log.wall0, 1.0)
        timeline.add_log(log, 0, n)
        pcts = options.percentiles
        return cls(
            url=options.url,
            label=options.label,
            start_time=log.wall0,
            requested_qps=options.qps,
            requested_duration=0.0 if options.exactly else options.duration,
            exactly=options.n,
            num_threads=options.c,
            uniform=options.uniform,
            jitter=options.jitter,
            nocatchup=options.nocatchup,
            timeout=options.timeout,
            requested_percentiles=pcts,
            actual_duration=actual_duration,
            requests=n,
            codes=dict(sorted(codes.items())),
            errors=errors,
            by_version=by_version,
            by_flags=by_flags,
            sockets=list(sockets),
            duration_histogram=histogram_data(latencies, DURATION_DIVIDER, pcts),
            errors_duration_histogram=histogram_data(error_latencies, DURATION_DIVIDER, pcts),
            # fortio's fast client reports the whole response (headers + body) as the size
            sizes=histogram_data([log.size[i] + log.hsize[i] for i in range(n)], SIZES_DIVIDER),
            header_sizes=histogram_data(log.hsize[:n], HEADER_SIZES_DIVIDER),
            corrected_percentiles=hdr_percentiles(corrected, pcts),
            loop_lag=loop_lag,
            timeline_rows=timeline.rows(),
            engine=options.resolved_engine,
            done=done,
            stopped_early=stopped_early,
            client_cpu_s=client_cpu_s,
            fortio_retry=options.fortio_retry,
            retried_reused=retried_reused,
            skipped_slots=skipped_slots,
            ip_count_map=dict(sorted((ip_counts or {}).items())),
            connection_stats=histogram_data(connect_times, DURATION_DIVIDER, pcts),
            records=log,
        )

    # ------------------------------------------------------------------ derived numbers
    @property
    def actual_qps(self) -> float:
        return self.requests / self.actual_duration if self.actual_duration > 0 else 0.0

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.codes.items() if is_success(code))

    @property
    def non_2xx(self) -> int:
        """Requests that did not succeed (non-2xx answers and transport errors, fortio's -1)."""
        return self.requests - self.ok

    @property
    def error_rate(self) -> float:
        return self.non_2xx / self.requests if self.requests else 0.0

    @property
    def socket_count(self) -> int:
        return sum(self.sockets)

    @property
    def percentiles(self) -> dict[float, float]:
        """{percentile: seconds} measured from the actual send (fortio's view)."""
        return percentile_map(self.duration_histogram.get("Percentiles"))

    @property
    def corrected(self) -> dict[float, float]:
        """{percentile: seconds} measured from the scheduled send (wrk2's view)."""
        return percentile_map(self.corrected_percentiles)

    def percentile_ms(self, p: float, *, corrected: bool = False) -> float:
        """Latency at percentile ``p`` in ms (computed from the records if ``p`` was not asked)."""
        table = self.corrected if corrected else self.percentiles
        if p in table:
            return table[p] * 1000
        if self.records is None:
            raise KeyError(f"percentile {p} was not computed for this run")
        log = self.records
        n = len(log)
        base = log.sched if corrected else log.send
        values = [log.end[i] - base[i] for i in range(n)]
        result = hdr_percentiles(values, [p])
        return result[0]["Value"] * 1000 if result else math.nan

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50.0)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99.0)

    @overload
    def timeline(self, *, as_frame: Literal[False] = False) -> list[dict[str, Any]]: ...
    @overload
    def timeline(self, *, as_frame: Literal[True]) -> pd.DataFrame: ...
    @overload
    def timeline(self, *, as_frame: bool) -> list[dict[str, Any]] | pd.DataFrame: ...

    def timeline(self, *, as_frame: bool = False) -> list[dict[str, Any]] | pd.DataFrame:
        """Per-second rows (see ``Timeline.rows``), or a pandas DataFrame with ``as_frame=True``."""
        return rows_to_frame(self.timeline_rows) if as_frame else self.timeline_rows

    # ------------------------------------------------------------------ fortio's report
    def starting_line(self) -> str:
        """fortio's first line: the rate, the threads and the calls planned (report.py)."""
        return report.starting_line(self)

    def summary(self) -> str:
        """fortio's text report, then the lab's extra lines (marked ``# zdlab``)."""
        return report.summary(self)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------ fortio's JSON
    def to_fortio_json(self) -> dict[str, Any]:
        """fortio's ``HTTPRunnerResults`` JSON, extras under ``zdlab`` (fortio_json.py)."""
        return fortio_json.to_fortio_json(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_fortio_json(), indent=indent)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the fortio JSON (atomically: a reader never sees half a file)."""
        return fortio_json.save_fortio_json(self, path)

    @classmethod
    def from_fortio_json(cls, doc: dict[str, Any] | str | os.PathLike[str]) -> LoadResults:
        """Read fortio's JSON (a dict, JSON text or a file path); keeps the ``zdlab`` extras."""
        return cls(**fortio_json.fields_from_fortio_json(doc))


__all__ = [
    "ERROR_NAMES",
    "FORTIO_JSON_VERSION",
    "LoadResults",
    "histogram_data",
    "is_success",
]
