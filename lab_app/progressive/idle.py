"""Is a subset idle? The gateway's own counters decide when an old version may go.

Retiring v1 is safe only when the gateway sends it nothing: no request in flight
(``upstream_rq_active`` is 0) and no new one for a quiet period (``upstream_rq_total`` does not
move). A weight of 0 is not enough on its own: requests that began before the change (a 10 s
long task) still run on v1, and a push that has not reached the gateway still routes there.
Notebook 05, the ``subset-cutover`` experiment and the progressive controller's scale-down all
ask this one question, so it is answered here once.

On a real cluster the gateway exposes these counters only if its ``proxy.istio.io/config``
keeps them (``proxyStatsMatcher: {inclusionRegexps: [".*upstream_rq_.*"]}``); without them
this raises ``LabError`` saying so, rather than guessing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

from lab_app.cluster.base import Cluster
from lab_app.errors import LabError
from lab_app.progressive.analysis import (
    LoadSource,
    SubsetCounters,
    stats_filter,
    subset_counters,
    window_records,
)
from lab_app.progressive.routing import read_routing


class NoCountersError(LabError):
    """The gateway keeps no ``upstream_rq`` counters for the subset (Istio's default stats)."""


@dataclass(frozen=True)
class Idle:
    """When the subset was seen idle, and the counters that showed it."""

    subset: str
    at: float  # wall clock
    waited_s: float
    counters: SubsetCounters
    quiet_s: float = 1.0

    def __str__(self) -> str:
        return (
            f"gateway: no new request to {self.subset} for the quiet period and none in flight "
            f"(upstream_rq_total {self.counters.total}, waited {self.waited_s:.1f} s)"
        )

    def reason(self) -> str:
        """The words of a scale-down decision."""
        return (
            f"gateway: no new request to {self.subset} for {self.quiet_s:g} s, none in flight "
            f"(upstream_rq_total {self.counters.total})"
        )


async def subset_counters_now(
    cluster: Cluster, subset: str, clusters: Sequence[str]
) -> SubsetCounters:
    """The gateway's counters for ``subset`` (summed over its Envoy clusters)."""
    stats = await cluster.proxy_stats("gateway", stats_filter([subset]))
    return subset_counters(stats, {subset: clusters})[subset]


class IdleWait(TypedDict, total=False):
    """How ``wait_subset_idle`` waits: ``wait_clusters_idle``'s options (and defaults)."""

    quiet_s: float
    timeout: float
    poll: float


async def wait_subset_idle(
    cluster: Cluster, virtualservice: str, subset: str, **wait: Unpack[IdleWait]
) -> Idle:
    """Return once the gateway has had no request in flight to ``subset`` and sent it no new
    one for ``quiet_s`` seconds (default 1); ``LabError`` after ``timeout`` (default 60) or if
    it has no counters."""
    routing = await read_routing(cluster, virtualservice)
    clusters = routing.clusters_of(subset)[subset]
    if not clusters:
        raise LabError(f"the gateway has no cluster for subset {subset} of {virtualservice}")
    return await wait_clusters_idle(cluster, subset, clusters, **wait)


async def wait_clusters_idle(
    cluster: Cluster,
    subset: str,
    clusters: Sequence[str],
    *,
    quiet_s: float = 1.0,
    timeout: float = 60.0,
    poll: float = 0.1,
) -> Idle:
    """``wait_subset_idle`` for a caller that has already read the routing (the cutover
    controller): ``clusters`` are the subset's Envoy cluster names. The rule itself:

    quiet means ``upstream_rq_total`` did not move and ``upstream_rq_active`` is 0; the
    quiet period starts at the first quiet reading (at once if nothing is in flight) and any
    new request or one in flight restarts it.
    """
    start = time.monotonic()
    last = await subset_counters_now(cluster, subset, clusters)
    if not last.found:
        raise NoCountersError(
            f"the gateway exposes no upstream_rq counters for {subset}: add proxyStatsMatcher "
            "inclusionRegexps ['.*upstream_rq_.*'] to the gateway's proxy.istio.io/config"
        )
    quiet_since = start if last.active == 0 else None
    while True:
        await asyncio.sleep(poll)
        now = await subset_counters_now(cluster, subset, clusters)
        if now.total != last.total or now.active > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        last = now
        if quiet_since is not None and time.monotonic() - quiet_since >= quiet_s:
            return Idle(subset, time.time(), time.monotonic() - start, now, quiet_s)
        if time.monotonic() - start > timeout:
            raise LabError(
                f"{subset} still got traffic {timeout:g} s later (in flight {now.active}, "
                f"upstream_rq_total {now.total}); not retiring it"
            )


async def wait_version_quiet(
    loads: Sequence[LoadSource],
    subset: str,
    version: str,
    *,
    quiet_s: float = 1.0,
    timeout: float = 60.0,
    poll: float = 0.1,
) -> str:
    """The fallback when the gateway keeps no counters: return once the load records show
    no answer from ``version`` for ``quiet_s`` seconds (and at least ``quiet_s`` has passed);
    ``LabError`` after ``timeout``. Weaker than the gateway's rule: it sees only the lab's
    own load, not other clients, nor requests still in flight."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(poll)
        t1 = time.time()
        recent = window_records(loads, t1 - quiet_s - 60.0, t1)
        last_seen = max((r.ended for r in recent if r.version == version), default=0.0)
        if time.monotonic() - start >= quiet_s and t1 - last_seen >= quiet_s:
            return f"load: no answer from {version} for {quiet_s:g} s"
    raise LabError(
        f"{subset} still got traffic {timeout:g} s after the cutover; not scaling it down"
    )
