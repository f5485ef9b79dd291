"""``progressive_cutover``: move traffic to a canary step by step, let measurements decide.

What Flagger and Argo Rollouts automate, on the lab's VirtualService and subsets:

1. **before anything changes**, check the inputs (``spec.make_spec``: steps increasing,
   weights 0..100, known checks) and the gateway (the VirtualService routes there; stable and
   canary subsets are clusters of the gateway, i.e. the DestinationRule defines them: make
   before break);
2. **each step**: set the weights (canary ``w``, stable ``100 - w``, any other routed subset
   0), wait until the gateway holds them, then wait one ``interval_s``, the analysis window;
3. **judge the window** with the checks (success rate of non-5xx and p99 latency of the
   canary's own requests from the load records, and the gateway's counters of the canary's
   cluster). All pass: advance to the next step (or promote after the last). One fails: hold
   the weight and count a failed check (Flagger's ``failedChecks``); ``threshold`` failed
   checks: **roll back**, all traffic to the stable subset;
4. **promote**: 100 % to the canary; then, optionally, scale the old version down, but only
   once the gateway has sent it no new request for ``idle_window_s`` and has none in flight
   (``idle.wait_clusters_idle``, the rule notebook 05 uses too).

Every decision (an ``Action``: step, hold, promote, rollback, paused, resumed, scale-down) is
a ``Decision`` and an ``Event`` of kind ``Decision`` on ``virtualservice/NAME`` for the
charts, published on the cutover's own ``EventHub`` (``result.events``,
``handle.subscribe()``): the backends' ``note()`` only makes ``Note`` events.

``start.progressive_cutover`` makes a ``Controller`` and awaits it; ``start.start_progressive``
runs it as a background task with manual gates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from lab_app.cluster.base import Cluster
from lab_app.cluster.events import Event, EventHub
from lab_app.errors import ConfigError, LabError
from lab_app.progressive.analysis import (
    LoadSource,
    SubsetCounters,
    Window,
    load_scopes,
    stats_filter,
    subset_counters,
    window_records,
)
from lab_app.progressive.checks import CheckResult, evaluate
from lab_app.progressive.decisions import Action, Analysis, CutoverResult, Decision, Outcome, Phase
from lab_app.progressive.gates import Command, Gate
from lab_app.progressive.idle import wait_clusters_idle, wait_version_quiet
from lab_app.progressive.ports import KnowsDeployments
from lab_app.progressive.routing import Routing, read_routing, require_subsets
from lab_app.progressive.spec import CutoverSpec

OnDecision = Callable[[Decision], object]


@dataclass(eq=False, repr=False)
class Controller:
    """One cutover's state; ``run()`` does it (see the module doc)."""

    cluster: Cluster
    spec: CutoverSpec
    loads: list[LoadSource]
    gate: Gate
    on_decision: OnDecision | None
    decisions: list[Decision] = field(default_factory=list, init=False)
    analyses: list[Analysis] = field(default_factory=list, init=False)
    hub: EventHub = field(default_factory=EventHub, init=False)
    state: Phase = field(default=Phase.STARTING, init=False)
    outcome: Outcome | None = field(default=None, init=False)
    weight: int = field(default=0, init=False)
    max_weight: int = field(default=0, init=False)
    step: int = field(default=0, init=False)  # 1-based index of the step in effect
    failed: int = field(default=0, init=False)
    scaled_down: str | None = field(default=None, init=False)
    started: float = field(default_factory=time.time, init=False)
    routing: Routing | None = field(default=None, init=False)
    # routed subsets other than stable and canary: weight 0
    others: list[str] = field(default_factory=list, init=False)
    # a weight was set: an error from now on rolls back
    _changed: bool = field(default=False, init=False)
    _stats_ok: bool = field(default=False, init=False)  # the gateway has counters for both subsets

    def __post_init__(self) -> None:
        self.gate.on_change(self._on_gate)

    # ------------------------------------------------------------------ decisions / events
    def _record(self, decision: Decision) -> Decision:
        self.decisions.append(decision)
        self.hub.publish(decision.to_event(self.spec.virtualservice))
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def _decide(
        self,
        action: Action,
        reason: str,
        *,
        t: float | None = None,
        checks: tuple[CheckResult, ...] = (),
        applied_at: float | None = None,
        failed_checks: int | None = None,
    ) -> Decision:
        """Record a decision at the current weight and step (``failed_checks``: the count so
        far unless given)."""
        return self._record(
            Decision(
                action=action,
                weight=self.weight,
                reason=reason,
                step=self.step,
                t=time.time() if t is None else t,
                failed_checks=self.failed if failed_checks is None else failed_checks,
                checks=checks,
                applied_at=applied_at,
            )
        )

    def _on_gate(self, action: Action, reason: str) -> None:
        if action == Action.PAUSED:
            self.state = Phase.PAUSED
        elif action == Action.RESUMED:
            self.state = Phase.PROGRESSING
        self._decide(action, reason)

    @property
    def events(self) -> list[Event]:
        return self.hub.events()

    def subscribe(self) -> AsyncIterator[Event]:
        """The decisions so far, then each new one; ends when the cutover is over."""
        return self.hub.subscribe()

    # ------------------------------------------------------------------ cluster operations
    async def _preflight(self) -> None:
        """Everything that can be refused, refused before any weight changes."""
        spec = self.spec
        if spec.needs_load and not self.loads:
            names = ", ".join(c.name for c in spec.checks if c.source == "load")
            raise ConfigError(
                f"check(s) {names} read the load's records: pass load=start_load(...) "
                "(the run that sends traffic through the gateway during the cutover)"
            )
        routing = await read_routing(self.cluster, spec.virtualservice, spec.settle_timeout_s)
        require_subsets(routing, spec.stable, spec.canary)
        self.routing = routing
        self.others = sorted(routing.routed() - {spec.stable, spec.canary})
        try:
            counters = await self._snapshot()
        except LabError:
            if spec.needs_gateway:
                raise
            counters = {}  # only the load checks: go on without the gateway's counters
        self._stats_ok = bool(counters) and all(c.found for c in counters.values())
        if spec.needs_gateway and not self._stats_ok:
            raise ConfigError(
                f"check gateway-success-rate: the gateway exposes no counters for the "
                f"clusters of {spec.stable}/{spec.canary} (Istio keeps only a few Envoy stats "
                "by default: add proxyStatsMatcher inclusionRegexps ['.*upstream_rq_.*'] to the "
                "gateway's proxy.istio.io/config, or drop the gateway check)"
            )
        if (spec.scale_down or spec.scale_down_canary) and not (self._stats_ok or self.loads):
            raise ConfigError(
                "scale_down needs the gateway's counters or a load run to tell that the old "
                "version gets no more traffic"
            )
        if isinstance(self.cluster, KnowsDeployments):
            for deployment in (spec.scale_down, spec.scale_down_canary):
                if deployment:
                    self.cluster.deployment_status(deployment)  # ConfigError naming the known

    def _clusters(self, *subsets: str) -> dict[str, tuple[str, ...]]:
        if self.routing is None:
            raise LabError("the gateway's routing is read by the preflight, which has not run")
        return self.routing.clusters_of(*subsets)

    async def _snapshot(self) -> dict[str, SubsetCounters]:
        subsets = (self.spec.stable, self.spec.canary)
        stats = await self.cluster.proxy_stats("gateway", stats_filter(subsets))
        return subset_counters(stats, self._clusters(*subsets))

    async def _set_weight(self, weight: int) -> float:
        """Canary ``weight``, stable the rest, other routed subsets 0; returns when the
        gateway holds them (wall clock)."""
        spec = self.spec
        weights = dict.fromkeys(self.others, 0)
        weights[spec.stable] = 100 - weight
        weights[spec.canary] = weight
        self._changed = True
        await self.cluster.set_weights(spec.virtualservice, weights)
        await self.cluster.config_settled(spec.settle_timeout_s)
        self.weight = weight
        self.max_weight = max(self.max_weight, weight)
        return time.time()

    async def _step_to(self, index: int, reason: str, checks: tuple[CheckResult, ...] = ()) -> None:
        """Go to ``spec.steps[index]`` and record the ``step`` decision."""
        t = time.time()
        self.step = index + 1
        applied = await self._set_weight(self.spec.steps[index])
        self._decide(Action.STEP, reason, t=t, checks=checks, applied_at=applied)

    async def _analyse(self) -> Analysis | Command:
        """One interval at the current weight; a gate's promote/abort cuts it short."""
        spec = self.spec
        t0 = time.time()
        before = await self._snapshot() if self._stats_ok else {}
        command = await self.gate.wait(spec.interval_s)
        if command is not None:
            return command
        t1 = time.time()
        gateway: dict[str, SubsetCounters] = {}
        if self._stats_ok:
            after = await self._snapshot()
            gateway = {
                "canary": after[spec.canary].minus(before[spec.canary]),
                "stable": after[spec.stable].minus(before[spec.stable]),
            }
        records = window_records(self.loads, t0, t1)
        window = Window(
            t0,
            t1,
            self.weight,
            load=load_scopes(
                records, stable_version=spec.stable_version, canary_version=spec.canary_version
            ),
            gateway=gateway,
        )
        analysis = Analysis(self.step, window, tuple(evaluate(spec.checks, window)))
        self.analyses.append(analysis)
        return analysis

    async def _finish(
        self,
        outcome: Outcome,
        weight: int,
        action: Action,
        reason: str,
        checks: tuple[CheckResult, ...] = (),
    ) -> None:
        t = time.time()
        self.gate.finish(outcome)  # from now on the gates refuse
        applied = await self._set_weight(weight) if self.weight != weight else None
        self.outcome = outcome  # only once the gateway holds the final weights
        self.state = Phase(outcome)
        self._decide(action, reason, t=t, checks=checks, applied_at=applied)

    async def _wait_idle(self, subset: str, version: str) -> str:
        """Return once ``subset`` gets no new request for ``idle_window_s`` and has none in
        flight (the gateway's counters; else the load records); LabError after the timeout."""
        spec = self.spec
        poll = min(0.2, spec.idle_window_s / 4)
        if self._stats_ok:
            idle = await wait_clusters_idle(
                self.cluster,
                subset,
                self._clusters(subset)[subset],
                quiet_s=spec.idle_window_s,
                timeout=spec.idle_timeout_s,
                poll=poll,
            )
            return idle.reason()
        return await wait_version_quiet(
            self.loads,
            subset,
            version,
            quiet_s=spec.idle_window_s,
            timeout=spec.idle_timeout_s,
            poll=poll,
        )

    async def _scale_down(self, deployment: str, subset: str, version: str) -> None:
        try:
            why = await self._wait_idle(subset, version)
        except LabError as exc:
            self._decide(Action.SCALE_DOWN, f"skipped: {exc}", failed_checks=0)
            return
        await self.cluster.scale(deployment, 0)
        self.scaled_down = deployment
        self._decide(Action.SCALE_DOWN, f"deployment/{deployment} to 0: {why}", failed_checks=0)

    # ------------------------------------------------------------------ the loop
    async def _progress(self) -> None:
        spec = self.spec
        self.state = Phase.PAUSED if self.gate.paused else Phase.PROGRESSING
        index = 0
        await self._step_to(index, f"start: {spec.canary} gets {spec.steps[0]} %")
        while True:
            result = await self._analyse()
            if result == "abort":
                await self._finish(Outcome.ABORTED, 0, Action.ROLLBACK, self.gate.command_reason)
                return
            if result == "promote":
                await self._finish(Outcome.PROMOTED, 100, Action.PROMOTE, self.gate.command_reason)
                return
            assert isinstance(result, Analysis)
            summary, checks = result.summary(), result.results
            if not result.passed:
                self.failed += 1
                if self.failed >= spec.threshold:
                    await self._finish(
                        Outcome.ROLLED_BACK,
                        0,
                        Action.ROLLBACK,
                        f"{self.failed} failed check(s) reached threshold {spec.threshold}: "
                        f"{summary}",
                        checks,
                    )
                    return
                self._decide(
                    Action.HOLD,
                    f"check failed ({self.failed} of {spec.threshold} before rollback): {summary}",
                    checks=checks,
                )
            elif self.gate.paused:
                self._decide(Action.HOLD, f"paused (checks pass: {summary})", checks=checks)
            elif index == len(spec.steps) - 1:
                reason = f"all {len(spec.steps)} steps passed: {summary}"
                await self._finish(Outcome.PROMOTED, 100, Action.PROMOTE, reason, checks)
                return
            else:
                index += 1
                reason = f"checks passed at {spec.steps[index - 1]} %: {summary}"
                await self._step_to(index, reason, checks)

    async def run(self) -> CutoverResult:
        spec = self.spec
        try:
            await self._preflight()
            await self._progress()
        except asyncio.CancelledError:
            await self._emergency_rollback("cancelled")
            raise
        except Exception as exc:
            await self._emergency_rollback(f"error: {exc}")
            raise
        finally:
            if self.outcome is None:
                self.gate.finish(Phase.FAILED)
                self.state = Phase.FAILED if self.state != Phase.STARTING else Phase.REFUSED
        outcome = self.outcome
        assert outcome is not None  # _progress returns only through _finish, which sets it
        try:
            if outcome == Outcome.PROMOTED and spec.scale_down:
                await self._scale_down(spec.scale_down, spec.stable, spec.stable_version)
            elif outcome != Outcome.PROMOTED and spec.scale_down_canary:
                await self._scale_down(spec.scale_down_canary, spec.canary, spec.canary_version)
        finally:
            self.hub.close()
        return CutoverResult(
            spec=spec,
            outcome=outcome,
            decisions=list(self.decisions),
            analyses=list(self.analyses),
            started=self.started,
            ended=time.time(),
            failed_checks=self.failed,
            max_weight=self.max_weight,
            weight=self.weight,
            scaled_down=self.scaled_down,
        )

    async def _emergency_rollback(self, why: str) -> None:
        """After an error or a cancel mid-way, send traffic back to stable (best effort)."""
        try:
            if self._changed and self.outcome is None:
                self.outcome = Outcome.ABORTED
                self.gate.finish(Outcome.ABORTED)
                self.state = Phase.ABORTED
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._set_weight(0), 15)
                    self._decide(Action.ROLLBACK, why, failed_checks=0)
        finally:
            self.hub.close()
