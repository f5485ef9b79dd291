"""``subset-cutover``: move traffic from v1 to v2 by weights, then retire v1 -- zero errors.

The Istio way of the original demo: both versions run side by side (``deployment-v1.yaml``,
``deployment-v2.yaml``, each pod labelled with its ``version``), the DestinationRule names
the subsets, and the VirtualService moves traffic by weight, 90/10 -> 50/50 -> 0/100, while
load runs on ``/k8s/demo`` and ``/k8s/longTask``. No pod is stopped while it gets traffic:

1. make before break: the DestinationRule (with subset ``version-v2``) is applied before any
   route names that subset; the VirtualService starts with v1 only and ``set_weights`` adds
   the v2 destination (``set_weights`` refuses a subset the DestinationRule lacks);
2. each step is measured from the moment the gateway confirmed the new weights: the share of
   each version among the requests sent in that step is compared with weight / sum;
3. after 0/100, v1 is scaled to 0, with the load still running, only once the gateway has no
   request in flight to it and sends it no new one for a second (``wait_subset_idle``: the
   Envoy stats ``upstream_rq_active``/``upstream_rq_total`` of v1's cluster; where the gateway
   keeps no such stats, the experiment waits a long task's length).

In-memory override (recorded in ``params``): every route of ``virtualservice-v1-v2.yaml``
(``long-tasks`` and ``default``) starts with the v1 destination only; ``set_weights`` moves
both routes' weights together.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lab_app.claims import share_bound_points
from lab_app.cluster import Cluster
from lab_app.errors import ConfigError, LabError
from lab_app.experiments.common import (
    APP,
    first_event_after,
    manifest,
    records_between,
    settle,
    wait_http_ok,
)
from lab_app.experiments.result import ExperimentResult
from lab_app.experiments.runner import LoadSpec, Session, run_session
from lab_app.progressive.idle import NoCountersError, wait_subset_idle

V1, V2 = f"{APP}-v1", f"{APP}-v2"
SUBSETS = {"version-v1": "v1", "version-v2": "v2"}
DEFAULT_WEIGHTS: tuple[tuple[int, int], ...] = ((90, 10), (50, 50), (0, 100))


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 4) for k, v in sorted(counts.items())} if total else {}


async def _push_time(s: Session, since: float, timeout: float = 10.0) -> float:
    """When the gateway confirmed a weights change made after ``since`` (wall clock)."""
    c = s.cluster
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = first_event_after(c, "ConfigPushed", since, obj="proxy/gateway", reason="weights")
        if event is not None:
            return float(event.t)
        rejected = first_event_after(c, "ConfigRejected", since, obj="proxy/gateway")
        if rejected is not None:
            raise LabError(f"the gateway rejected the new weights: {rejected.message}")
        await s.stopper.sleep(0.01)
    raise LabError(f"the gateway did not confirm the new weights within {timeout:g}s")


async def _wait_no_traffic(s: Session, subset: str, fallback: float, timeout: float) -> float:
    """Wait until the gateway has no request in flight to ``subset`` and sends it no new one
    for a second (``wait_subset_idle``); without its counters, wait a long task's length."""
    start = time.monotonic()
    try:
        await s.stopper.run(wait_subset_idle(s.cluster, APP, subset, timeout=timeout))
    except NoCountersError:
        await s.stopper.sleep(fallback)
    return time.monotonic() - start


async def run_subset_cutover(
    cluster: Cluster | None = None,
    *,
    qps: float = 200.0,
    step_seconds: float = 10.0,
    weights: Sequence[tuple[int, int]] = DEFAULT_WEIGHTS,
    longtask_qps: float = 0.5,
    longtask_seconds: float = 10.0,
    cluster_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ExperimentResult:
    """Weighted cutover v1 -> v2 under load; see the module doc.

    Each step's entry in ``result.steps`` has ``weights``, ``expected`` and ``measured``
    shares per version, ``deviation_points`` (the largest difference, in percentage points),
    ``bound_points`` (per version, the binomial bound of ``lab_app.claims``),
    ``within_bound``, and the step's ``requests`` and ``non_2xx``.
    """
    if qps <= 0 or step_seconds < 1:
        raise ConfigError("qps must be > 0 and step_seconds >= 1")
    steps = [tuple(int(x) for x in w) for w in weights]
    for w in steps:
        if len(w) != 2 or min(w) < 0 or max(w) > 100 or sum(w) == 0:
            raise ConfigError(f"each step is (v1 weight, v2 weight), 0..100, not both 0: {w}")
    vs = manifest("istio/virtualservice-v1-v2.yaml")
    for route in vs["spec"]["http"]:  # every route starts with v1 only
        route["route"] = [
            d for d in route["route"] if d["destination"].get("subset") == "version-v1"
        ]
        route["route"][0].pop("weight", None)
    docs = [
        manifest("namespace.yaml"),
        manifest("configmap.yaml"),
        manifest("service.yaml"),
        manifest("deployment-v1.yaml"),
        manifest("deployment-v2.yaml"),
        manifest("istio/destinationrule.yaml"),  # subsets first: make before break
        manifest("istio/gateway.yaml"),
        vs,
    ]
    # baseline + one window per step, then up to a long task's length until v1 is idle, then
    # a few seconds of load after v1 was scaled to 0
    duration = step_seconds * (len(steps) + 1) + longtask_seconds + 4.0
    loads = [
        LoadSpec("demo", "/k8s/demo", qps, max(4, min(64, math.ceil(qps / 12.5)))),
        LoadSpec(
            "longTask",
            f"/k8s/longTask?seconds={longtask_seconds:g}",
            longtask_qps,
            max(2, math.ceil(longtask_qps * (longtask_seconds + 3))),
            timeout=longtask_seconds * 2 + 15,
        ),
    ]
    params = {
        "qps": qps,
        "step_seconds": step_seconds,
        "weights": [list(w) for w in steps],
        "longtask_qps": longtask_qps,
        "longtask_seconds": longtask_seconds,
        "share_bound": "max(1 point, 4 binomial standard errors of each step's n)",
        "duration": duration,
        "overrides": {"virtualservice": "every route starts with the version-v1 destination"},
    }

    async def body(s: Session) -> None:
        c = s.cluster
        await s.build_images("v1", "v2")
        await s.deploy(docs, [V1, V2], timeout=120)
        base = c.gateway_url()
        await wait_http_ok(base + "/k8s/demo", timeout=30, stopper=s.stopper)
        await s.stopper.run(settle(c))
        s.step("v1 and v2 ready; route: v1 only")
        s.start_loads(base, loads, duration)
        load_start = time.time()
        demo = s.runs["demo"]
        windows: list[dict[str, Any]] = [
            {"step": 0, "weights": {"version-v1": 100}, "t_pushed": load_start}
        ]
        for i, (w1, w2) in enumerate(steps, start=1):
            await s.stopper.until(load_start + i * step_seconds)
            t_set = time.time()
            wanted = {"version-v1": w1, "version-v2": w2}
            await s.stopper.run(c.set_weights(APP, wanted))
            pushed = await _push_time(s, t_set)
            windows.append({"step": i, "weights": wanted, "t_set": t_set, "t_pushed": pushed})
        await s.stopper.until(load_start + (len(steps) + 1) * step_seconds)  # hold the last step
        waited = await _wait_no_traffic(
            s, "version-v1", fallback=longtask_seconds + 2, timeout=longtask_seconds * 2 + 20
        )
        t_scale = time.time()
        await s.stopper.run(c.scale(V1, 0))
        s.step("v1 scaled to 0", waited_for_no_traffic_s=round(waited, 3))
        windows.append({"step": len(steps) + 1, "action": "v1 scaled to 0", "t_pushed": t_scale})
        await s.wait_loads()
        end = time.time()
        _measure(s, windows, demo.results, end)

    return await run_session(
        "subset-cutover",
        cluster=cluster,
        cluster_options=dict(cluster_options or {}),
        params=params,
        stop=stop,
        body=body,
    )


def _measure(s: Session, windows: list[dict[str, Any]], results: Any, end: float) -> None:
    """Turn the step windows into ``result.steps`` entries with measured shares."""
    for k, window in enumerate(windows):
        start = window["t_pushed"]
        stop = (
            windows[k + 1].get("t_set", windows[k + 1]["t_pushed"]) if k + 1 < len(windows) else end
        )
        versions: Counter[str] = Counter()
        codes: Counter[int] = Counter()
        for r in records_between(results, start, stop):
            codes[r.code] += 1
            if 200 <= r.code < 300:
                versions[r.version or "?"] += 1
        entry: dict[str, Any] = {
            "step": window["step"],
            "t": window.get("t_set", start),
            "t_pushed": start,
            "t_end": stop,
            "requests": sum(codes.values()),
            "non_2xx": sum(n for code, n in codes.items() if not 200 <= code < 300),
            "measured": _shares(versions),
        }
        if "weights" in window:
            w = window["weights"]
            total = sum(w.values())
            expected = {SUBSETS[name]: round(v / total, 4) for name, v in w.items()}
            n = sum(versions.values())
            gaps = {v: abs(entry["measured"].get(v, 0.0) - p) * 100 for v, p in expected.items()}
            bounds = {v: round(share_bound_points(p * 100, n), 2) for v, p in expected.items()}
            entry.update(
                weights=w,
                expected=expected,
                push_lag_ms=round((start - window["t_set"]) * 1000, 1) if "t_set" in window else 0,
                deviation_points=round(max(gaps.values()), 2),
                bound_points=bounds,
                within_bound=all(gaps[v] <= bounds[v] for v in gaps),
            )
        else:
            entry["action"] = window.get("action", "")
        s.result.steps.append(entry)
