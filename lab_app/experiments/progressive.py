"""``progressive``: let measurements promote a good release and roll back a bad one.

Two cutovers under load through the gateway, each by ``progressive_cutover`` (Flagger /
Argo Rollouts style: weight steps, an analysis interval at each, checks on the canary's own
traffic, rollback after ``threshold`` failed checks):

1. **v1 -> v2** (a good build): the weights go 10/25/50/100 while every check passes; v2 is
   promoted and v1 is scaled to 0 once the gateway sends it nothing. Expected: 0 non-2xx.
2. **v2 -> v3** (the bad build, ``deployment-v3.yaml``: 5 % of ``/k8s/demo`` answered 500):
   the success-rate checks fail at the first step, the weight holds, and after ``threshold``
   failed checks all traffic goes back to v2; v3 is scaled to 0. The clients see the 500s of
   v3's share during the failing intervals only; after the rollback every answer is v2's.

In-memory overrides (recorded in ``params``): the VirtualService of
``virtualservice-v1-v2.yaml`` starts with the v1 destination only; ``error_rate`` other than
0.05 replaces v3's ``FAULT_ERROR_RATE``; every Deployment runs ``replicas`` pods (1 by
default: the lesson is about routing, and the laptop has few cores).

The result has the shape of every experiment's plus ``decisions`` (each cutover's decisions,
labelled ``cutover``) and ``cutovers`` (each ``CutoverResult.to_dict()``); the decision
events are merged into ``events``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from lab_app.cluster import Cluster
from lab_app.cluster.events import Event, EventKind
from lab_app.errors import ConfigError
from lab_app.experiments.common import APP, manifest, set_env, settle, wait_http_ok
from lab_app.experiments.result import ExperimentResult
from lab_app.experiments.runner import Session, run_session
from lab_app.progressive import CutoverResult, Decision, build_steps, progressive_cutover

V1, V2, V3 = f"{APP}-v1", f"{APP}-v2", f"{APP}-v3"
MANIFEST_ERROR_RATE = 0.05  # deployment-v3.yaml's FAULT_ERROR_RATE


@dataclass
class ProgressiveResult(ExperimentResult):
    """An ``ExperimentResult`` plus the cutovers' decisions."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    cutovers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, include_fortio: bool = True) -> dict[str, Any]:
        out = super().to_dict(include_fortio=include_fortio)
        extra = {"decisions": self.decisions, "cutovers": self.cutovers}
        out.update(json.loads(json.dumps(extra, default=str)))
        return out

    def summary(self) -> str:
        lines = ["=== decisions"]
        for d in self.decisions:
            stamp = time.strftime("%H:%M:%S", time.localtime(d["t"]))
            lines.append(
                f"  {stamp} [{d['cutover']}] {d['action']:<10} canary {d['weight']:>3} %  "
                f"{d['reason']}"
            )
        return super().summary() + "\n" + "\n".join(lines)


def _records_after(results: Any, t: float) -> Counter[str]:
    """Versions of the 2xx answers to requests sent after ``t``."""
    log = getattr(results, "records", None)
    counts: Counter[str] = Counter()
    if log is None:
        return counts
    for r in log.records():
        if r.sent >= t:
            counts[r.version if 200 <= r.code < 300 else str(r.code)] += 1
    return counts


async def run_progressive(
    cluster: Cluster | None = None,
    *,
    qps: float = 200.0,
    interval_s: float = 3.0,
    duration: float | None = None,
    steps: Sequence[int] = (10, 25, 50, 100),
    threshold: int = 2,
    error_rate: float = MANIFEST_ERROR_RATE,
    replicas: int = 1,
    tail_s: float = 2.0,
    cluster_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ProgressiveResult:
    """Promote v2, then roll back v3 (see the module doc).

    ``duration`` (the CLI's ``--duration``), when given, is the time a promotion takes:
    ``interval_s = duration / len(steps)``. ``tail_s``: load kept after each cutover, to see
    where the traffic went afterwards.
    """
    if isinstance(qps, bool) or not isinstance(qps, int | float) or qps <= 0:
        raise ConfigError(f"qps must be > 0, got {qps!r}")
    weights = build_steps(list(steps), None, None)
    if duration is not None:
        if duration <= 0:
            raise ConfigError(f"duration must be > 0 seconds, got {duration!r}")
        interval_s = duration / len(weights)
    if not interval_s >= 1.0:
        given = f" (duration {duration:g} s over {len(weights)} steps)" if duration else ""
        raise ConfigError(
            f"interval_s must be at least 1 s, got {interval_s:g}{given}: each step needs "
            "an analysis window long enough to count the canary's requests"
        )
    if not 0.0 <= error_rate <= 1.0:
        raise ConfigError(f"error_rate is a share 0..1 (0.05 = 5 %), got {error_rate!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError(f"replicas must be an integer >= 1, got {replicas!r}")
    expected = qps * interval_s * weights[0] / 100
    vs = manifest("istio/virtualservice-v1-v2.yaml")
    for route in vs["spec"]["http"]:
        route["route"] = [d for d in route["route"] if d["destination"]["subset"] == "version-v1"]
        route["route"][0].pop("weight", None)
    deployments = {}
    for name in ("deployment-v1.yaml", "deployment-v2.yaml", "deployment-v3.yaml"):
        doc = manifest(name)
        doc["spec"]["replicas"] = replicas
        deployments[name] = doc
    if error_rate != MANIFEST_ERROR_RATE:
        set_env(deployments["deployment-v3.yaml"], "FAULT_ERROR_RATE", f"{error_rate:g}")
    # the longest a cutover may take: every step held threshold-1 times, plus scale-down
    bound = len(weights) * threshold * (interval_s + 3) + 90
    params = {
        "qps": qps,
        "interval_s": interval_s,
        "steps": list(weights),
        "threshold": threshold,
        "error_rate": error_rate,
        "replicas": replicas,
        "canary_requests_first_step": round(expected),
        "overrides": {
            "virtualservice": "starts with the version-v1 destination only",
            "replicas": replicas,
            "deployment-v3 FAULT_ERROR_RATE": error_rate,
        },
    }
    decisions: list[dict[str, Any]] = []
    cutovers: list[dict[str, Any]] = []

    def collect(label: str) -> Any:
        def on_decision(d: Decision) -> None:
            decisions.append({"cutover": label, **d.to_dict()})

        return on_decision

    async def phase(
        s: Session,
        label: str,
        stable: str,
        canary: str,
        *,
        scale_down: str | None = None,
        scale_down_canary: str | None = None,
    ) -> CutoverResult:
        from lab_app.load import start_load

        c = s.cluster
        run = start_load(
            c.gateway_url() + "/k8s/demo",
            qps=qps,
            c=max(4, min(64, math.ceil(qps / 12.5))),
            duration=0,
            max_duration=bound,
            label=label,
        )
        s.runs[label] = run
        s.step(f"{label}: load started", qps=qps)
        result = await s.stopper.run(
            progressive_cutover(
                c,
                APP,
                stable,
                canary,
                steps=weights,
                interval_s=interval_s,
                threshold=threshold,
                load=run,
                on_decision=collect(label),
                scale_down=scale_down,
                scale_down_canary=scale_down_canary,
            )
        )
        final = result.decision("promote" if result.promoted else "rollback")
        after = (final.applied_at or final.t) if final is not None else result.ended
        await s.stopper.sleep(tail_s)
        run.stop(drain=True)  # the planned end: requests in flight finish
        results = await run
        cutovers.append({"cutover": label, **result.to_dict()})
        s.result.steps.append(
            {
                "t": result.started,
                "action": label,
                "outcome": result.outcome,
                "max_weight": result.max_weight,
                "failed_checks": result.failed_checks,
                "requests": results.requests,
                "non_2xx": results.non_2xx,
                "by_version": dict(results.by_version),
                "after_outcome": dict(_records_after(results, after + 0.5)),
                "scaled_down": result.scaled_down,
            }
        )
        return result

    async def body(s: Session) -> None:
        c = s.cluster
        for version in ("v1", "v2", "v3"):
            await s.stopper.run(c.build_image(version))
        s.step("images built")
        docs = [
            manifest("namespace.yaml"),
            manifest("configmap.yaml"),
            manifest("service.yaml"),
            deployments["deployment-v1.yaml"],
            deployments["deployment-v2.yaml"],
            manifest("istio/destinationrule.yaml"),  # every subset first: make before break
            manifest("istio/gateway.yaml"),
            vs,
        ]
        await s.deploy(docs, [V1, V2], timeout=120)
        await s.stopper.run(settle(c))
        await wait_http_ok(c.gateway_url() + "/k8s/demo", timeout=30, stopper=s.stopper)
        s.step("v1 and v2 ready; route: v1 only")
        first = await phase(s, "v1->v2", "version-v1", "version-v2", scale_down=V1)
        if not first.promoted:
            s.result.notes.append(f"v2 was not promoted ({first}); the v3 phase was skipped")
            return
        await s.deploy([deployments["deployment-v3.yaml"]], [V3], timeout=120)
        await s.stopper.run(settle(c))
        s.step("v3 (the bad build) ready, no traffic yet", error_rate=error_rate)
        await phase(s, "v2->v3", "version-v2", "version-v3", scale_down_canary=V3)

    base = await run_session(
        "progressive",
        cluster=cluster,
        cluster_options=dict(cluster_options or {}),
        params=params,
        stop=stop,
        body=body,
    )
    result = ProgressiveResult(
        **{f.name: getattr(base, f.name) for f in fields(ExperimentResult)},
        decisions=decisions,
        cutovers=cutovers,
    )
    result.events = sorted([*result.events, *map(_event, decisions)], key=lambda e: e.t)
    if decisions:
        result.notes.append(
            "non-2xx of the v2->v3 phase are the bad build's 500s, answered to the canary's "
            "share before the rollback"
        )
    return result


def _event(decision: dict[str, Any]) -> Event:
    return Event(
        kind=str(EventKind.DECISION),
        obj=f"virtualservice/{APP}",
        message=f"{decision['action']}: canary {decision['weight']} % ({decision['reason']})",
        t=decision["t"],
        data=decision,
    )
