"""What a load run measured, in fortio's vocabulary (report text and JSON) plus the lab's extras.

``LoadResults`` is a snapshot: built from a run's request log (``from_log``) or from a fortio
JSON file (``from_fortio_json``); both paths fill the same fields, so ``to_fortio_json`` after
``from_fortio_json`` gives back the same document. ``to_fortio_json`` writes every field of
fortio's ``fhttp.HTTPRunnerResults`` (with the embedded ``periodic.RunnerResults`` and
``HTTPOptions`` flattened, as Go's encoding/json does), with fortio's names, types and
histogram dividers; see docs/fidelity.md and tests/load/data/. The extras fortio lacks (error
classes, latency from the scheduled send, responding versions, per-second timeline, the
client's own event-loop lag, retried/skipped counts) travel under the key ``zdlab``, which
fortio's UI ignores.
"""

from __future__ import annotations

import json
import math
import os
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from hdrh.histogram import HdrHistogram

from lab_app.errors import ConfigError
from lab_app.load.options import DEFAULT_PERCENTILES, LoadOptions, format_duration
from lab_app.load.records import ERROR_CLASSES, ERROR_NAMES, RequestLog
from lab_app.load.timeline import Timeline, rows_to_frame

if TYPE_CHECKING:
    import pandas as pd

VERSION = "zdlab-load 0.1"
#: The fortio release whose JSON fields (periodic/periodic.go, fhttp/httprunner.go,
#: fhttp/http_client.go, stats/stats.go) ``to_fortio_json`` reproduces.
FORTIO_JSON_VERSION = "1.75.2"
#: fortio's histogram dividers: durations in ms buckets, body+header sizes in 100-byte units,
#: header sizes in 5-byte units (fhttp/httprunner.go ``NewHistogram(0, 100)`` / ``(0, 5)``).
DURATION_DIVIDER = 0.001
SIZES_DIVIDER = 100.0
HEADER_SIZES_DIVIDER = 5.0

# fortio's histogram bucket upper bounds (in units of the divider: 1 ms for durations).
# fmt: off
_BUCKETS = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 25, 30, 35, 40, 45, 50,
    60, 70, 80, 90, 100, 120, 140, 160, 180, 200, 250, 300, 350, 400, 450, 500,
    600, 700, 800, 900, 1000, 2000, 3000, 4000, 5000, 7500, 10000,
    20000, 30000, 40000, 50000, 75000, 100000,
]
# fmt: on
_HDR_MAX_US = 3_600_000_000  # one hour, in microseconds


def is_success(code: int) -> bool:
    """fortio's rule: 2xx and 418 are OK, everything else (and -1) is an error."""
    return 200 <= code < 300 or code == 418


def histogram_data(
    values: Iterable[float],
    divider: float = 0.001,
    percentiles: Sequence[float] = (),
    offset: float = 0.0,
) -> dict[str, Any]:
    """fortio's ``HistogramData`` for ``values``: counters, bucket ``Data`` and ``Percentiles``.

    Buckets are fortio's (``stats/stats.go``): a value ``v`` is scaled to
    ``(v - offset) / divider`` and falls in ``]prev, cur]`` of the bucket values, so the
    ``divider`` is the bucket unit (0.001 s for durations, 100 bytes for fortio's ``Sizes``,
    5 bytes for ``HeaderSizes``). Percentiles come from an HdrHistogram (microsecond
    resolution, 3 significant digits) rather than fortio's bucket interpolation, so a p99 is not
    rounded to a bucket edge. As in fortio's JSON, ``Percentiles`` is absent when none were
    asked or there is no data (Go's ``omitempty``) and ``Data`` is null when empty.
    """
    vals = sorted(values)
    count = len(vals)
    if count == 0:
        return {"Count": 0, "Min": 0, "Max": 0, "Sum": 0, "Avg": 0, "StdDev": 0, "Data": None}
    total = math.fsum(vals)
    avg = total / count
    variance = max(0.0, math.fsum((v - avg) ** 2 for v in vals) / count)
    counts = [0] * (len(_BUCKETS) + 1)
    last = _BUCKETS[-1]
    for v in vals:
        scaled = (v - offset) / divider
        if scaled <= 0:
            counts[0] += 1
        elif scaled > last:
            counts[-1] += 1
        else:
            whole = int(scaled)
            if scaled - whole < 1e-12:  # the interval is open on the left: 5.0 goes in ]4, 5]
                whole -= 1
            counts[bisect_right(_BUCKETS, whole)] += 1
    data: list[dict[str, Any]] = []
    cumulative = 0
    prev = _BUCKETS[0]
    for i, n in enumerate(counts):
        if n == 0:
            if i < len(_BUCKETS):
                prev = _BUCKETS[i]
            continue
        cumulative += n
        start = vals[0] if not data else prev * divider + offset
        if i < len(_BUCKETS):
            end = _BUCKETS[i] * divider + offset
            prev = _BUCKETS[i]
        else:
            end = vals[-1]
        data.append({"Start": start, "End": end, "Percent": 100.0 * cumulative / count, "Count": n})
    data[-1]["End"] = vals[-1]
    result: dict[str, Any] = {
        "Count": count,
        "Min": vals[0],
        "Max": vals[-1],
        "Sum": total,
        "Avg": avg,
        "StdDev": math.sqrt(variance),
        "Data": data,
    }
    if percentiles:
        result["Percentiles"] = hdr_percentiles(vals, percentiles)
    return result


def hdr_percentiles(
    values: Iterable[float], percentiles: Sequence[float], scale: float = 1e6
) -> list[dict[str, float]]:
    """``[{Percentile, Value}]`` via HdrHistogram; values are seconds, recorded as microseconds."""
    hist = HdrHistogram(1, _HDR_MAX_US, 3)
    n = 0
    for v in values:
        hist.record_value(min(_HDR_MAX_US, max(1, round(v * scale))))
        n += 1
    if n == 0:
        return []
    return [
        {"Percentile": p, "Value": hist.get_value_at_percentile(p) / scale} for p in percentiles
    ]


def _rfc3339(wall: float) -> str:
    """Like Go's ``time.Time`` in JSON (RFC 3339, fraction without trailing zeros, Z for UTC)."""
    moment = datetime.fromtimestamp(wall, tz=UTC).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    if fraction:
        text += "." + fraction
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    zone = moment.strftime("%z")
    return text + zone[:3] + ":" + zone[3:]


def _parse_rfc3339(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        raise ConfigError(f"fortio JSON: StartTime {text!r} is not RFC 3339") from None


def _percentile_map(items: list[dict[str, float]] | None) -> dict[float, float]:
    return {float(p["Percentile"]): float(p["Value"]) for p in items or []}


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
        return _percentile_map(self.duration_histogram.get("Percentiles"))

    @property
    def corrected(self) -> dict[float, float]:
        """{percentile: seconds} measured from the scheduled send (wrk2's view)."""
        return _percentile_map(self.corrected_percentiles)

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
        qps = "max" if self.requested_qps <= 0 else f"{self.requested_qps:g}"
        gomax = os.cpu_count() or 1
        head = f"Starting at {qps} qps with {self.num_threads} thread(s) [gomax {gomax}]"
        if self.exactly:
            each, extra = divmod(self.exactly, self.num_threads)
            return f"{head} for exactly {self.exactly} calls ({each} per thread + {extra})"
        if self.requested_duration <= 0:
            return f"{head} until interrupted"
        dur = format_duration(self.requested_duration)
        if self.requested_qps > 0:
            # The schedule: worker w sends at offset_w + i * period while that is < duration.
            period = self.num_threads / self.requested_qps
            counts = [
                max(0, math.ceil((self.requested_duration - offset) / period - 1e-9))
                for offset in (
                    period * w / self.num_threads if self.uniform else 0.0
                    for w in range(self.num_threads)
                )
            ]
            return f"{head} for {dur} : {counts[0]} calls each (total {sum(counts)})"
        return f"{head} for {dur}"

    def summary(self) -> str:
        """fortio's text report, then the lab's extra lines (marked ``# zdlab``)."""
        lines = [self.starting_line()]
        lines.append(
            f"Ended after {self.actual_duration:.6g}s : {self.requests} calls. "
            f"qps={self.actual_qps:.5g}"
        )
        if self.stopped_early:
            lines.append("# zdlab: the run was stopped before its end; these are partial results")
        lines.extend(_histogram_lines(self.duration_histogram, "Aggregated Function Time"))
        lines.extend(_histogram_lines(self.errors_duration_histogram, "Error cases"))
        lines.append(
            f"Sockets used: {self.socket_count} "
            f"(for perfect keepalive, would be {self.num_threads})"
        )
        total = self.requests or 1
        for code, n in sorted(self.codes.items()):
            lines.append(f"Code {code:3d} : {n} ({100.0 * n / total:.1f} %)")
        if any(self.errors.values()):
            parts = ", ".join(f"{k} {v}" for k, v in self.errors.items())
            lines.append(f"# zdlab: code -1 by class: {parts}")
        reset_reused = self.errors.get("reset_reused", 0)
        if self.fortio_retry:
            lines.append(
                f"# zdlab: fortio retry mode: {self.retried_reused} request(s) whose reused "
                "keep-alive socket died before the response were retried once on a new socket "
                "(errors fortio hides)"
            )
        elif reset_reused:
            lines.append(
                f"# zdlab: {reset_reused} reset_reused: a reused keep-alive socket died before "
                "the response; fortio would have retried each once and hidden it if the retry "
                "succeeded"
            )
        if self.errors.get("cancelled", 0):
            lines.append(
                f"# zdlab: {self.errors['cancelled']} request(s) in flight when the run was "
                "stopped are counted as cancelled (code -1)"
            )
        if self.by_version:
            parts = ", ".join(
                f"{k} {v} ({100.0 * v / total:.1f} %)" for k, v in self.by_version.items()
            )
            lines.append(f"# zdlab: responding version: {parts}")
        if self.by_flags:
            parts = ", ".join(f"{k} {v}" for k, v in self.by_flags.items())
            lines.append(f"# zdlab: envoy response flags: {parts}")
        if self.nocatchup:
            # Skipped slots were never sent, so no latency stands for them: measuring from the
            # slot actually used is honest but it is not a coordinated-omission correction.
            lines.append(
                f"# zdlab: nocatchup skipped {self.skipped_slots} scheduled send(s); latency "
                "below is from the scheduled slot actually used, NOT corrected for coordinated "
                "omission"
            )
            label = "from the scheduled slot used"
        else:
            label = "corrected for coordinated omission (from scheduled send)"
        for item in self.corrected_percentiles:
            lines.append(f"# zdlab: {label}: target {item['Percentile']:g}% {item['Value']:.6g}")
        if self.loop_lag:
            lines.append(
                f"# zdlab: client event-loop lag: max {self.loop_lag.get('max_ms', 0):.1f} ms, "
                f"p99 {self.loop_lag.get('p99_ms', 0):.1f} ms (engine {self.engine})"
            )
        if self.client_cpu_s and self.requests:
            lines.append(
                f"# zdlab: client process CPU {self.client_cpu_s:.3f} s "
                f"({1000 * self.client_cpu_s / self.requests:.3f} ms per request)"
            )
        avg_ms = 1000 * self.duration_histogram.get("Avg", 0.0)
        lines.append(
            f"All done {self.requests} calls (plus 0 warmup) {avg_ms:.3f} ms avg, "
            f"{self.actual_qps:.1f} qps"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------ fortio's JSON
    def to_fortio_json(self) -> dict[str, Any]:
        """fortio's ``HTTPRunnerResults`` JSON (every field, fortio's names, types and order).

        ``periodic.RunnerResults`` and ``HTTPOptions`` are embedded structs in Go, so their
        fields sit at the top level, as fortio writes them. Options the lab does not have keep
        fortio's zero values (no payload, no TLS files, keep-alive on). Go's float64 fields are
        JSON numbers, its ``time.Duration`` fields integer nanoseconds. The lab's extras are
        under ``zdlab``.
        """
        return {
            # periodic.RunnerResults (periodic/periodic.go)
            "RunType": "HTTP",
            "Labels": self.label,
            "StartTime": _rfc3339(self.start_time),
            "RequestedQPS": "max" if self.requested_qps <= 0 else f"{self.requested_qps:.9g}",
            "RequestedDuration": self._requested_duration_text(),
            "ActualQPS": self.actual_qps,
            "ActualDuration": round(self.actual_duration * 1e9),
            "NumThreads": self.num_threads,
            "Version": VERSION,
            "DurationHistogram": dict(self.duration_histogram),
            "ErrorsDurationHistogram": dict(self.errors_duration_histogram),
            "Exactly": self.exactly,
            "Jitter": self.jitter,
            "Uniform": self.uniform,
            "NoCatchUp": self.nocatchup,
            "RunID": 0,
            "AccessLoggerInfo": "",
            "ID": _run_id(self.start_time, self.label),
            # fhttp.HTTPRunnerResults (fhttp/httprunner.go)
            "RetCodes": {str(code): n for code, n in sorted(self.codes.items())},
            "IPCountMap": dict(self.ip_count_map),
            # fhttp.HTTPOptions, embedded (fhttp/http_client.go), with its TLSOptions first
            "Insecure": False,
            "MTLS": False,
            "CACert": "",
            "Cert": "",
            "Key": "",
            "UnixDomainSocket": "",
            "URL": self.url,
            "NumConnections": self.num_threads,
            "Compression": False,
            "DisableFastClient": self.engine == "httpx",  # httpx plays fortio's std client
            "HTTP10": False,
            "H2": False,
            "DisableKeepAlive": False,
            "AllowHalfClose": False,
            "FollowRedirects": False,
            "Resolve": "",
            "HTTPReqTimeOut": round(self.timeout * 1e9),
            "UserCredentials": "",
            "ContentType": "",
            "Payload": None,
            "MethodOverride": "",
            "LogErrors": False,
            "SequentialWarmup": False,
            "ConnReuseRange": [0, 0],
            "NoResolveEachConn": False,
            "Offset": 0,
            "Resolution": DURATION_DIVIDER,
            # back to fhttp.HTTPRunnerResults
            "Sizes": dict(self.sizes),
            "HeaderSizes": dict(self.header_sizes),
            "Sockets": list(self.sockets),
            "SocketCount": self.socket_count,
            "ConnectionStats": dict(self.connection_stats) or histogram_data([]),
            "AbortOn": 0,
            "zdlab": {
                "fortio_json_version": FORTIO_JSON_VERSION,
                "timeout_s": self.timeout,
                "requested_percentiles": list(self.requested_percentiles),
                "requests": self.requests,
                "non_2xx": self.non_2xx,
                "errors": dict(self.errors),
                "fortio_retry": self.fortio_retry,
                "retried_reused": self.retried_reused,
                "skipped_slots": self.skipped_slots,
                "by_version": dict(self.by_version),
                "by_flags": dict(self.by_flags),
                "corrected_percentiles": list(self.corrected_percentiles),
                "loop_lag": self.loop_lag,
                "timeline": self.timeline_rows,
                "engine": self.engine,
                "done": self.done,
                "stopped_early": self.stopped_early,
                "client_cpu_s": self.client_cpu_s,
                "start_time_unix": self.start_time,
                "actual_duration_s": self.actual_duration,
                "requested_duration_s": self.requested_duration,
                "requested_qps": self.requested_qps,
            },
        }

    def _requested_duration_text(self) -> str:
        """fortio's ``RequestedDuration`` (periodic.go ``runQPSSetup`` / ``runMaxQPSSetup``)."""
        if self.exactly:
            text = f"exactly {self.exactly} calls"
            if self.requests != self.exactly:
                text += f", interrupted after {self.requests}"
            return text
        if self.requested_duration > 0:
            return format_duration(self.requested_duration)
        return "until stop" if self.requested_qps > 0 else ""

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_fortio_json(), indent=indent)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the fortio JSON (atomically: a reader never sees half a file)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, target)
        return target

    @classmethod
    def from_fortio_json(cls, doc: dict[str, Any] | str | os.PathLike[str]) -> LoadResults:
        """Read fortio's JSON (a dict, JSON text or a file path); keeps the ``zdlab`` extras."""
        if isinstance(doc, os.PathLike) or (
            isinstance(doc, str) and not doc.lstrip().startswith("{")
        ):
            try:
                doc = json.loads(Path(doc).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"fortio JSON {doc}: {exc}") from None
        elif isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"fortio JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("RunType") not in ("HTTP", None):
            raise ConfigError("fortio JSON: expected an object with RunType 'HTTP'")
        for key in ("StartTime", "ActualDuration", "NumThreads", "DurationHistogram", "RetCodes"):
            if key not in doc:
                raise ConfigError(f"fortio JSON: missing field {key}")
        extra = doc.get("zdlab") or {}
        codes = {int(k): int(v) for k, v in doc["RetCodes"].items()}
        requests = int(extra.get("requests", doc["DurationHistogram"].get("Count", 0)))
        qps_text = str(doc.get("RequestedQPS", "0"))
        requested_qps = extra.get(
            "requested_qps", 0.0 if qps_text == "max" else float(qps_text or 0)
        )
        if "requested_duration_s" in extra:
            requested_duration = float(extra["requested_duration_s"])
        else:
            text = str(doc.get("RequestedDuration", ""))
            requested_duration = 0.0
            if text and not text.startswith(("exactly", "until")):
                from lab_app.load.options import parse_duration

                requested_duration = parse_duration(text, name="RequestedDuration")
        pcts = extra.get("requested_percentiles") or [
            p["Percentile"] for p in doc["DurationHistogram"].get("Percentiles") or []
        ]
        errors = dict.fromkeys(ERROR_CLASSES, 0)
        errors.update({k: int(v) for k, v in (extra.get("errors") or {}).items()})
        if not extra and codes.get(-1):
            errors["other"] = codes[-1]
        timeout = extra.get("timeout_s")
        if timeout is None:
            timeout = (doc.get("HTTPReqTimeOut") or 3e9) / 1e9
        return cls(
            url=str(doc.get("URL", "")),
            label=str(doc.get("Labels", "")),
            start_time=float(extra.get("start_time_unix", _parse_rfc3339(doc["StartTime"]))),
            requested_qps=float(requested_qps),
            requested_duration=requested_duration,
            exactly=int(doc.get("Exactly", 0)),
            num_threads=int(doc["NumThreads"]),
            uniform=bool(doc.get("Uniform", False)),
            jitter=bool(doc.get("Jitter", False)),
            nocatchup=bool(doc.get("NoCatchUp", False)),
            timeout=float(timeout),
            requested_percentiles=tuple(float(p) for p in pcts) or DEFAULT_PERCENTILES,
            actual_duration=float(extra.get("actual_duration_s", doc["ActualDuration"] / 1e9)),
            requests=requests,
            codes=codes,
            errors=errors,
            by_version=dict(extra.get("by_version") or {}),
            by_flags=dict(extra.get("by_flags") or {}),
            sockets=[int(s) for s in doc.get("Sockets") or []],
            duration_histogram=dict(doc["DurationHistogram"]),
            errors_duration_histogram=dict(doc.get("ErrorsDurationHistogram") or {}),
            sizes=dict(doc.get("Sizes") or {}),
            header_sizes=dict(doc.get("HeaderSizes") or {}),
            corrected_percentiles=list(extra.get("corrected_percentiles") or []),
            loop_lag=dict(extra.get("loop_lag") or {}),
            timeline_rows=_restore_rows(extra.get("timeline") or []),
            engine=str(extra.get("engine", "fortio")),
            done=bool(extra.get("done", True)),
            stopped_early=bool(extra.get("stopped_early", False)),
            client_cpu_s=float(extra.get("client_cpu_s", 0.0)),
            fortio_retry=bool(extra.get("fortio_retry", False)),
            retried_reused=int(extra.get("retried_reused", 0)),
            skipped_slots=int(extra.get("skipped_slots", 0)),
            ip_count_map={str(k): int(v) for k, v in (doc.get("IPCountMap") or {}).items()},
            connection_stats=dict(doc.get("ConnectionStats") or {}),
        )


def _restore_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON turns the int code keys of each row into strings; turn them back."""
    out = []
    for row in rows:
        row = dict(row)
        row["codes"] = {int(k): v for k, v in (row.get("codes") or {}).items()}
        out.append(row)
    return out


def _run_id(start: float, label: str) -> str:
    """fortio's result ID (periodic.go ``GenID``, RunID 0): date, then the label's letters and
    digits with every other run of characters turned into one ``_``, at most 96 bytes."""
    base = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(start))
    if not label:
        return base
    out = []
    last = "_"
    for ch in label:
        if ch.isascii() and ch.isalnum():
            last = ch
        elif last == "_":
            continue
        else:
            last = "_"
        out.append(last)
    base += "_" + "".join(out)
    if last == "_":
        base = base[:-1]
    return base[:96]


def _histogram_lines(hist: dict[str, Any], title: str) -> list[str]:
    if not hist or not hist.get("Count"):
        return [f"{title} : no data"]
    lines = [
        f"{title} : count {hist['Count']} avg {hist['Avg']:.8g} +/- {hist['StdDev']:.4g} "
        f"min {hist['Min']:g} max {hist['Max']:g} sum {hist['Sum']:.9g}",
        "# range, mid point, percentile, count",
    ]
    for i, b in enumerate(hist.get("Data") or []):
        sep = ">=" if i == 0 else ">"
        lines.append(
            f"{sep} {b['Start']:.6g} <= {b['End']:.6g} , {(b['Start'] + b['End']) / 2:.6g} , "
            f"{b['Percent']:.2f}, {b['Count']}"
        )
    for p in hist.get("Percentiles") or []:
        lines.append(f"# target {p['Percentile']:g}% {p['Value']:.6g}")
    return lines


__all__ = [
    "ERROR_NAMES",
    "FORTIO_JSON_VERSION",
    "LoadResults",
    "histogram_data",
    "is_success",
]
