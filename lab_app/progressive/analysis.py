"""What one analysis interval measured: from the inline load records and from the gateway.

Flagger and Argo Rollouts judge a canary on *its own* traffic over the last interval (a
Prometheus query such as ``istio_requests_total{destination_workload="podinfo-canary"}``
over ``interval``). The lab has two sources for the same numbers, so a learner can see that
they agree:

* the load generator's records: each request's send and end time, status and the
  ``x-app-version`` header of the answer (every answer of the demo service carries it, 500s
  included), so the canary's requests are the records answered by the canary's version;
* the gateway Envoy's own counters for the canary subset's cluster
  (``cluster.outbound|8080|version-v3|HOST.upstream_rq_completed`` / ``upstream_rq_5xx``):
  what the proxy saw, including 503s it generated itself, which carry no version header.

A window holds the requests *sent* at or after its start (after the new weights reached the
gateway) and *completed* before its end: a request still in flight at the end is not judged,
and a request sent under the previous weights is never blamed on the new ones.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

from lab_app.errors import ConfigError
from lab_app.load.records import Record, RequestLog
from lab_app.load.results import LoadResults
from lab_app.load.runner import LoadRun

SCOPES = ("canary", "stable", "all")

# What the load checks read: a run (live), its results, a log, or synthetic records (tests).
LoadSource: TypeAlias = LoadRun | LoadResults | RequestLog | Sequence[Record]


def is_failure(code: int) -> bool:
    """Flagger's request-success-rate counts 5xx as failures; a transport error (fortio's
    ``-1``: refused, reset, timeout) is a request the client never got an answer to, so it
    fails too. 4xx is the client's problem, not the release's: it counts as a success."""
    return code < 0 or 500 <= code <= 599


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; NaN when empty.

    Nearest rank, not interpolation: a p99 over 60 requests is the slowest but one request
    that really happened, which is what a learner can find in the records.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class LoadWindow:
    """The requests of one scope (``canary``, ``stable`` or ``all``) within a window."""

    scope: str
    version: str
    requests: int
    failures: int
    codes: dict[int, int] = field(default_factory=dict)
    p99_ms: float = math.nan
    p50_ms: float = math.nan

    @property
    def success_rate(self) -> float:
        """Percent of requests that did not fail (NaN without requests)."""
        if not self.requests:
            return math.nan
        return 100.0 * (self.requests - self.failures) / self.requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "version": self.version,
            "requests": self.requests,
            "failures": self.failures,
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "success_rate": _round(self.success_rate, 4),
            "p50_ms": _round(self.p50_ms, 3),
            "p99_ms": _round(self.p99_ms, 3),
        }


def summarize(records: Iterable[Record], *, scope: str = "all", version: str = "") -> LoadWindow:
    """Count and time ``records`` of one scope: ``canary``/``stable`` keep only the records
    answered by ``version`` (their ``x-app-version``), ``all`` keeps every record."""
    if scope not in SCOPES:
        raise ConfigError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if scope != "all" and not version:
        raise ConfigError(f"scope {scope!r} needs the version that answers for it")
    codes: Counter[int] = Counter()
    latencies: list[float] = []
    for r in records:
        if scope != "all" and r.version != version:
            continue
        codes[r.code] += 1
        latencies.append(r.ended - r.sent)
    failures = sum(n for code, n in codes.items() if is_failure(code))
    return LoadWindow(
        scope=scope,
        version=version if scope != "all" else "",
        requests=sum(codes.values()),
        failures=failures,
        codes=dict(codes),
        p99_ms=1000.0 * percentile(latencies, 99.0),
        p50_ms=1000.0 * percentile(latencies, 50.0),
    )


def request_log(source: object) -> RequestLog | None:
    """The ``RequestLog`` of a ``LoadRun`` (``.log``), a ``LoadResults`` (``.records``) or a
    log itself; ``None`` for anything else."""
    if isinstance(source, RequestLog):
        return source
    for attr in ("log", "records"):
        value = getattr(source, attr, None)
        if isinstance(value, RequestLog):
            return value
    return None


def check_load_source(source: object) -> None:
    """Refuse early what ``window_records`` could not read (ConfigError naming the type)."""
    if request_log(source) is None and not isinstance(source, list | tuple):
        raise ConfigError(
            f"load: expected a LoadRun (start_load), LoadResults or a list of Records, "
            f"got {type(source).__name__}"
        )


def window_records(sources: Iterable[LoadSource], t0: float, t1: float) -> list[Record]:
    """Records sent at or after ``t0`` and completed before ``t1`` (wall clock), all sources.

    A source is a ``LoadRun`` (read live, while it runs), a ``LoadResults``, a ``RequestLog``
    or a plain list of ``Record`` (the unit tests' synthetic records).
    """
    out: list[Record] = []
    for source in sources:
        log = request_log(source)
        if log is None:  # check_load_source let only a list of Records through
            records = cast(Sequence[Record], source)
            out.extend(r for r in records if r.sent >= t0 and r.ended < t1)
            continue
        rel0, rel1 = t0 - log.wall0, t1 - log.wall0
        send, end = log.send, log.end
        for i in range(len(log)):
            if send[i] >= rel0 and end[i] < rel1:
                out.append(log.record(i))
    return out


# ---------------------------------------------------------------------------- gateway stats

COUNTERS = ("upstream_rq_total", "upstream_rq_completed", "upstream_rq_active", "upstream_rq_5xx")


@dataclass(frozen=True)
class SubsetCounters:
    """The gateway's counters for one subset, summed over its Envoy clusters (ports)."""

    subset: str
    total: int = 0  # requests sent to the subset (retried attempts included)
    completed: int = 0  # requests that got a response, the proxy's own 503s included
    active: int = 0  # in flight now (a gauge)
    errors_5xx: int = 0
    found: bool = False  # the gateway exposes counters for this subset at all

    def minus(self, before: SubsetCounters) -> SubsetCounters:
        """The counters of a window: ``self`` (its end) minus ``before`` (its start)."""
        return SubsetCounters(
            subset=self.subset,
            total=self.total - before.total,
            completed=self.completed - before.completed,
            active=self.active,
            errors_5xx=self.errors_5xx - before.errors_5xx,
            found=self.found and before.found,
        )

    @property
    def success_rate(self) -> float:
        if self.completed <= 0:
            return math.nan
        return 100.0 * (self.completed - self.errors_5xx) / self.completed

    def to_dict(self) -> dict[str, Any]:
        return {
            "subset": self.subset,
            "requests": self.completed,
            "sent": self.total,
            "errors_5xx": self.errors_5xx,
            "active": self.active,
            "success_rate": _round(self.success_rate, 4),
            "found": self.found,
        }


def stats_filter(subsets: Iterable[str]) -> str:
    """Envoy's ``/stats?filter=`` regex for the counters of the subsets' clusters."""
    names = "|".join(re.escape(s) for s in sorted(set(subsets)))
    stats = "|".join(c.removeprefix("upstream_rq_") for c in COUNTERS)
    return rf"^cluster\.outbound\|[0-9]+\|({names})\|.*upstream_rq_({stats})$"


def subset_counters(
    stats: Mapping[str, float], clusters: Mapping[str, Sequence[str]]
) -> dict[str, SubsetCounters]:
    """Sum ``stats`` (``{stat name: value}`` as ``proxy_stats`` returns) per subset.

    ``clusters`` maps a subset to its Envoy cluster names (``outbound|8080|SUBSET|FQDN``);
    only exact ``cluster.<name>.<counter>`` names count (not the ``external.``/``internal.``
    variants Envoy may add, which would count a request twice).
    """
    out: dict[str, SubsetCounters] = {}
    for subset, names in clusters.items():
        sums = dict.fromkeys(COUNTERS, 0)
        found = False
        for name in names:
            for counter in COUNTERS:
                value = stats.get(f"cluster.{name}.{counter}")
                if value is not None:
                    sums[counter] += int(value)
                    found = found or counter in ("upstream_rq_total", "upstream_rq_completed")
        out[subset] = SubsetCounters(
            subset=subset,
            total=sums["upstream_rq_total"],
            completed=sums["upstream_rq_completed"],
            active=sums["upstream_rq_active"],
            errors_5xx=sums["upstream_rq_5xx"],
            found=found,
        )
    return out


# ---------------------------------------------------------------------------- one interval


@dataclass
class Window:
    """Everything measured over one analysis interval at one canary weight."""

    t0: float
    t1: float
    weight: int
    load: dict[str, LoadWindow] = field(default_factory=dict)  # scope -> numbers
    gateway: dict[str, SubsetCounters] = field(default_factory=dict)  # "canary"/"stable" -> delta

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def to_dict(self) -> dict[str, Any]:
        return {
            "t0": self.t0,
            "t1": self.t1,
            "weight": self.weight,
            "load": {k: v.to_dict() for k, v in self.load.items()},
            "gateway": {k: v.to_dict() for k, v in self.gateway.items()},
        }


def load_scopes(
    records: Sequence[Record], *, stable_version: str, canary_version: str
) -> dict[str, LoadWindow]:
    """The three scopes of a window's records: canary, stable and all."""
    return {
        "canary": summarize(records, scope="canary", version=canary_version),
        "stable": summarize(records, scope="stable", version=stable_version),
        "all": summarize(records, scope="all"),
    }


# ---------------------------------------------------------------------------- statistics


def pass_probability(requests: int, error_rate: float, min_success_pct: float) -> float:
    """Probability that a build failing ``error_rate`` of its requests still shows a success
    rate of at least ``min_success_pct`` over ``requests`` requests (a binomial tail).

    Why it matters: at 5 % errors and a 99 % threshold, a window of 20 canary requests passes
    with probability 0.95**20 = 36 %: the check would be a coin toss. With 100 requests it is
    3.7 %, with 200 it is 0.2 %. Choose QPS x interval x first weight so the canary gets a
    few hundred requests per interval.
    """
    if requests <= 0:
        return 1.0
    if not 0.0 <= error_rate <= 1.0:
        raise ConfigError(f"error_rate must be within 0..1, got {error_rate!r}")
    allowed = math.floor(requests * (1.0 - min_success_pct / 100.0) + 1e-9)
    q = 1.0 - error_rate
    return sum(
        math.comb(requests, k) * error_rate**k * q ** (requests - k)
        for k in range(0, min(allowed, requests) + 1)
    )


def _round(value: float, digits: int) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)
