"""fortio's histogram and percentile arithmetic, shared by every number a run reports.

fortio summarises latencies and sizes as ``HistogramData`` (``stats/stats.go``): counters plus
fixed buckets whose unit is a *divider* (1 ms for durations, 100 bytes for ``Sizes``, 5 bytes
for ``HeaderSizes``). The lab writes the same buckets so its JSON reads in fortio's UI, but takes
percentiles from an HdrHistogram, so a p99 is not rounded to a bucket edge.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

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


def percentile_map(items: list[dict[str, float]] | None) -> dict[float, float]:
    """fortio's ``[{Percentile, Value}]`` list as ``{percentile: value}``."""
    return {float(p["Percentile"]): float(p["Value"]) for p in items or []}
