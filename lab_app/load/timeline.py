"""Per-second (or per-bin) counts of a run: by status code, error class and responding version.

This is the view fortio lacks: when during a rollout did the 503s happen, which version answered.
The same accumulator serves ``LoadResults.timeline()`` and the live charts, which feed it
incrementally from ``LoadRun.subscribe()`` batches.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any

from lab_app.load.records import ERROR_NAMES, RequestLog

if TYPE_CHECKING:
    import pandas as pd  # imported when first needed: it costs about a second


class _Bin:
    __slots__ = ("codes", "errors", "latencies", "versions")

    def __init__(self) -> None:
        self.codes: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.latencies = array("d")


def _quantile(sorted_values: array, q: float) -> float:
    """Nearest-rank quantile of already sorted values (q in 0..1)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(q * n))
    return sorted_values[rank - 1]


class Timeline:
    """Bins requests by the wall-clock time they were *sent*, relative to ``t0``."""

    def __init__(self, t0: float, bin_s: float = 1.0) -> None:
        if bin_s <= 0:
            raise ValueError("bin_s must be > 0")
        self.t0 = t0
        self.bin_s = bin_s
        self._bins: dict[int, _Bin] = {}

    def add(self, sent_wall: float, code: int, error: str, version: str, latency: float) -> None:
        index = math.floor((sent_wall - self.t0) / self.bin_s)
        b = self._bins.get(index)
        if b is None:
            b = self._bins[index] = _Bin()
        b.codes[code] += 1
        if error:
            b.errors[error] += 1
        b.versions[version or "?"] += 1
        b.latencies.append(latency)

    def add_log(self, log: RequestLog, start: int = 0, stop: int | None = None) -> int:
        """Add rows ``start..stop`` of a request log; returns the index to continue from."""
        stop = len(log) if stop is None else min(stop, len(log))
        offset = log.wall0 - self.t0
        bin_s = self.bin_s
        bins = self._bins
        send, end, code, err, ver = log.send, log.end, log.code, log.err, log.ver
        names = log.version_names
        for i in range(start, stop):
            index = math.floor((send[i] + offset) / bin_s)
            b = bins.get(index)
            if b is None:
                b = bins[index] = _Bin()
            b.codes[code[i]] += 1
            e = err[i]
            if e:
                b.errors[ERROR_NAMES[e]] += 1
            b.versions[names[ver[i]] or "?"] += 1
            b.latencies.append(end[i] - send[i])
        return stop

    def rows(self) -> list[dict[str, Any]]:
        """One dict per bin, oldest first, empty bins in between included.

        Keys: ``t`` (bin start, seconds since t0), ``wall``, ``requests``, ``codes`` {code: n},
        ``errors`` {class: n}, ``versions`` {version or "?": n}, ``p50_ms``, ``p99_ms``, ``max_ms``.
        """
        if not self._bins:
            return []
        first, last = min(self._bins), max(self._bins)
        out: list[dict[str, Any]] = []
        for index in range(first, last + 1):
            b = self._bins.get(index)
            t = round(index * self.bin_s, 6)
            if b is None:
                out.append(
                    {
                        "t": t,
                        "wall": self.t0 + t,
                        "requests": 0,
                        "codes": {},
                        "errors": {},
                        "versions": {},
                        "p50_ms": None,
                        "p99_ms": None,
                        "max_ms": None,
                    }
                )
                continue
            lat = array("d", sorted(b.latencies))
            out.append(
                {
                    "t": t,
                    "wall": self.t0 + t,
                    "requests": len(lat),
                    "codes": dict(sorted(b.codes.items())),
                    "errors": dict(sorted(b.errors.items())),
                    "versions": dict(sorted(b.versions.items())),
                    "p50_ms": round(_quantile(lat, 0.50) * 1000, 4),
                    "p99_ms": round(_quantile(lat, 0.99) * 1000, 4),
                    "max_ms": round(lat[-1] * 1000, 4),
                }
            )
        return out


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten timeline rows into a DataFrame: ``code_200``, ``error_reset``, ``version_v1``..."""
    import pandas as pd

    flat = []
    for row in rows:
        item = {k: v for k, v in row.items() if not isinstance(v, dict)}
        for prefix, key in (("code_", "codes"), ("error_", "errors"), ("version_", "versions")):
            for name, count in row.get(key, {}).items():
                item[f"{prefix}{name}"] = count
        flat.append(item)
    frame = pd.DataFrame(flat)
    counts = [c for c in frame.columns if c.startswith(("code_", "error_", "version_"))]
    if counts:
        frame[counts] = frame[counts].fillna(0).astype(int)
    return frame
