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
from dataclasses import dataclass
from typing import Any

from lab_app.errors import LabError
from lab_app.progressive.analysis import SubsetCounters, stats_filter, subset_counters
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

    def __str__(self) -> str:
        return (
            f"gateway: no new request to {self.subset} for the quiet period and none in flight "
            f"(upstream_rq_total {self.counters.total}, waited {self.waited_s:.1f} s)"
        )


async def subset_counters_now(
    cluster: Any, subset: str, clusters: tuple[str, ...]
) -> SubsetCounters:
    """The gateway's counters for ``subset`` (summed over its Envoy clusters)."""
    stats = await cluster.proxy_stats("gateway", stats_filter([subset]))
    return subset_counters(stats, {subset: clusters})[subset]


async def wait_subset_idle(
    cluster: Any,
    virtualservice: str,
    subset: str,
    *,
    quiet_s: float = 1.0,
    timeout: float = 60.0,
    poll: float = 0.1,
) -> Idle:
    """Return once the gateway has had no request in flight to ``subset`` and sent it no new
    one for ``quiet_s`` seconds; ``LabError`` after ``timeout`` or if it has no counters."""
    routing = await read_routing(cluster, virtualservice)
    clusters = routing.clusters_of(subset)[subset]
    if not clusters:
        raise LabError(f"the gateway has no cluster for subset {subset} of {virtualservice}")
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
            return Idle(subset, time.time(), time.monotonic() - start, now)
        if time.monotonic() - start > timeout:
            raise LabError(
                f"{subset} still got traffic {timeout:g} s later (in flight {now.active}, "
                f"upstream_rq_total {now.total}); not retiring it"
            )
