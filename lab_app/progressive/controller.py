"""``progressive_cutover``: move traffic to a canary step by step, let measurements decide.

What Flagger and Argo Rollouts automate, on the lab's VirtualService and subsets:

1. **before anything changes**, check the inputs (steps increasing, weights 0..100, known
   checks) and the gateway (the VirtualService routes there; stable and canary subsets are
   clusters of the gateway, i.e. the DestinationRule defines them: make before break);
2. **each step**: set the weights (canary ``w``, stable ``100 - w``, any other routed subset
   0), wait until the gateway holds them, then wait one ``interval_s``, the analysis window;
3. **judge the window** with the checks (success rate of non-5xx and p99 latency of the
   canary's own requests from the load records, and the gateway's counters of the canary's
   cluster). All pass: advance to the next step (or promote after the last). One fails: hold
   the weight and count a failed check (Flagger's ``failedChecks``); ``threshold`` failed
   checks: **roll back**, all traffic to the stable subset;
4. **promote**: 100 % to the canary; then, optionally, scale the old version down, but only
   once the gateway has sent it no new request for ``idle_window_s`` and has none in flight.

Every decision (``step``, ``hold``, ``promote``, ``rollback``, ``paused``, ``resumed``,
``scale-down``) is a ``Decision`` and an ``Event`` of kind ``Decision`` (``EventKind.DECISION``)
on ``virtualservice/NAME`` for the charts. The backends' ``note()`` only makes ``Note``
events, so the decisions are the cutover's own event list (``result.events``,
``handle.subscribe()``) rather than the cluster's.

``start_progressive`` runs the same thing as a background task and returns a handle with the
manual gates (``pause``, ``resume``, ``promote``, ``abort``), ``decisions`` and
``await handle`` for the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab_app.cluster.events import Event, EventKind
from lab_app.errors import ConfigError, LabError
from lab_app.progressive.analysis import (
    SubsetCounters,
    Window,
    check_load_source,
    load_scopes,
    stats_filter,
    subset_counters,
    window_records,
)
from lab_app.progressive.checks import DEFAULT_CHECKS, Check, CheckResult, evaluate, parse_checks
from lab_app.progressive.gates import Gate
from lab_app.progressive.routing import Routing, read_routing, require_subsets

DEFAULT_STEPS: tuple[int, ...] = (10, 25, 50, 100)
ACTIONS = ("step", "hold", "promote", "rollback", "paused", "resumed", "scale-down")
OUTCOMES = ("promoted", "rolled-back", "aborted")


# ---------------------------------------------------------------------------- configuration


def _number(name: str, value: Any, *, minimum: float, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if (value <= minimum) if strict else (value < minimum):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _weight(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer percentage 1..100, got {value!r}")
    if value > 100:
        raise ConfigError(f"{name} = {value} is over 100: a weight is a percentage 1..100")
    if value < 1:
        raise ConfigError(f"{name} = {value}: a step must send the canary some traffic (1..100)")
    return value


def build_steps(
    steps: Sequence[int] | None, step_weight: int | None, max_weight: int | None
) -> tuple[int, ...]:
    """The canary weights, from explicit ``steps`` or Flagger's ``stepWeight``/``maxWeight``.

    Flagger adds ``stepWeight`` each interval until ``maxWeight`` (the last step is capped at
    it), then promotes: ``step_weight=20, max_weight=50`` gives 20, 40, 50.
    """
    if steps is not None and (step_weight is not None or max_weight is not None):
        raise ConfigError("give either steps or step_weight/max_weight (Flagger), not both")
    if steps is None and step_weight is None:
        if max_weight is not None:
            raise ConfigError("max_weight needs step_weight")
        steps = DEFAULT_STEPS
    if steps is None:
        sw = _weight("step_weight", step_weight)
        mw = _weight("max_weight", 100 if max_weight is None else max_weight)
        if sw > mw:
            raise ConfigError(f"step_weight {sw} is above max_weight {mw}")
        out = list(range(sw, mw + 1, sw))
        if out[-1] != mw:
            out.append(mw)
        return tuple(out)
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise ConfigError(
            f"steps must be a list of weights such as [10, 25, 50, 100], not {steps!r}"
        )
    if not steps:
        raise ConfigError("steps is empty: give at least one weight, e.g. [10, 25, 50, 100]")
    checked = [_weight(f"steps[{i}]", w) for i, w in enumerate(steps)]
    for i in range(1, len(checked)):
        if checked[i] <= checked[i - 1]:
            raise ConfigError(
                f"steps must increase: steps[{i}] = {checked[i]} follows {checked[i - 1]} "
                f"(got {list(checked)})"
            )
    return tuple(checked)


@dataclass(frozen=True)
class CutoverSpec:
    """A validated cutover: everything ``progressive_cutover`` was asked to do."""

    virtualservice: str
    stable: str
    canary: str
    steps: tuple[int, ...]
    interval_s: float
    checks: tuple[Check, ...]
    threshold: int
    stable_version: str
    canary_version: str
    scale_down: str | None = None
    scale_down_canary: str | None = None
    idle_window_s: float = 1.0
    idle_timeout_s: float = 60.0
    settle_timeout_s: float = 30.0

    @property
    def needs_load(self) -> bool:
        return any(c.source == "load" for c in self.checks)

    @property
    def needs_gateway(self) -> bool:
        return any(c.source == "gateway" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "virtualservice": self.virtualservice,
            "stable": self.stable,
            "canary": self.canary,
            "steps": list(self.steps),
            "interval_s": self.interval_s,
            "threshold": self.threshold,
            "checks": [
                {
                    "name": c.name,
                    "source": c.source,
                    "metric": c.metric,
                    "scope": c.scope,
                    "threshold": c.threshold_text(),
                    "min_requests": c.min_requests,
                }
                for c in self.checks
            ],
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "scale_down": self.scale_down,
            "scale_down_canary": self.scale_down_canary,
            "idle_window_s": self.idle_window_s,
        }


def _name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty name, got {value!r}")
    return value.strip()


def make_spec(
    virtualservice: str,
    stable: str,
    canary: str,
    *,
    steps: Sequence[int] | None = None,
    step_weight: int | None = None,
    max_weight: int | None = None,
    interval_s: float = 5.0,
    checks: Iterable[str | Mapping[str, Any] | Check] | str = DEFAULT_CHECKS,
    threshold: int = 2,
    stable_version: str | None = None,
    canary_version: str | None = None,
    scale_down: str | None = None,
    scale_down_canary: str | None = None,
    idle_window_s: float = 1.0,
    idle_timeout_s: float = 60.0,
    settle_timeout_s: float = 30.0,
) -> CutoverSpec:
    """Validate every parameter (ConfigError naming the first bad one); touches no cluster."""
    vs = _name("virtualservice", virtualservice)
    stable = _name("stable (subset)", stable)
    canary = _name("canary (subset)", canary)
    if stable == canary:
        raise ConfigError(f"stable and canary are both {stable!r}: a cutover needs two subsets")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(
            f"threshold (failed checks before rollback) must be an integer >= 1, got {threshold!r}"
        )
    for what, value in (("scale_down", scale_down), ("scale_down_canary", scale_down_canary)):
        if value is not None:
            _name(what, value)
    return CutoverSpec(
        virtualservice=vs,
        stable=stable,
        canary=canary,
        steps=build_steps(steps, step_weight, max_weight),
        interval_s=_number("interval_s", interval_s, minimum=0.0),
        checks=parse_checks(checks),
        threshold=threshold,
        stable_version=_name("stable_version", stable_version or stable.removeprefix("version-")),
        canary_version=_name("canary_version", canary_version or canary.removeprefix("version-")),
        scale_down=scale_down,
        scale_down_canary=scale_down_canary,
        idle_window_s=_number("idle_window_s", idle_window_s, minimum=0.0),
        idle_timeout_s=_number("idle_timeout_s", idle_timeout_s, minimum=0.0),
        settle_timeout_s=_number("settle_timeout_s", settle_timeout_s, minimum=0.0),
    )


def _load_sources(load: Any) -> list[Any]:
    if load is None:
        return []
    sources = list(load) if isinstance(load, list | tuple) else [load]
    # a list of Records is one source, not many
    if sources and all(hasattr(s, "sent") and hasattr(s, "code") for s in sources):
        return [sources]
    for source in sources:
        check_load_source(source)
    return sources


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Decision:
    """One decision of the controller, at wall-clock time ``t``."""

    action: str  # one of ACTIONS
    weight: int  # the canary's weight once the decision is applied
    reason: str
    step: int = 0  # 1-based index of the step in effect (0: before the first)
    t: float = field(default_factory=time.time)
    failed_checks: int = 0
    checks: tuple[CheckResult, ...] = ()
    applied_at: float | None = None  # when the gateway held the new weights, if they changed

    def message(self) -> str:
        return f"{self.action}: canary {self.weight} % ({self.reason})"

    def to_event(self, virtualservice: str) -> Event:
        return Event(
            kind=str(EventKind.DECISION),
            obj=f"virtualservice/{virtualservice}",
            message=self.message(),
            t=self.t,
            data=self.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "action": self.action,
            "weight": self.weight,
            "step": self.step,
            "reason": self.reason,
            "failed_checks": self.failed_checks,
            "applied_at": self.applied_at,
            "checks": [c.to_dict() for c in self.checks],
        }

    def __str__(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.t))
        return f"{stamp} {self.action:<10} canary {self.weight:>3} %  {self.reason}"


@dataclass(frozen=True)
class Analysis:
    """One analysis interval: what was measured and how each check judged it."""

    step: int
    window: Window
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "passed": self.passed,
            **self.window.to_dict(),
            "checks": [r.to_dict() for r in self.results],
        }


@dataclass
class CutoverResult:
    """How a cutover ended, with every decision and every analysis window."""

    spec: CutoverSpec
    outcome: str  # promoted | rolled-back | aborted
    decisions: list[Decision]
    analyses: list[Analysis]
    started: float
    ended: float
    failed_checks: int
    max_weight: int  # the highest canary weight that was set
    weight: int  # the canary's weight at the end
    scaled_down: str | None = None  # the deployment scaled to 0 after the outcome, if any

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    @property
    def rolled_back(self) -> bool:
        return self.outcome in ("rolled-back", "aborted")

    @property
    def events(self) -> list[Event]:
        return [d.to_event(self.spec.virtualservice) for d in self.decisions]

    def decision(self, action: str, weight: int | None = None) -> Decision | None:
        """The first decision of kind ``action`` (at canary ``weight``, if given)."""
        return next(
            (
                d
                for d in self.decisions
                if d.action == action and (weight is None or d.weight == weight)
            ),
            None,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per decision (for a pandas DataFrame or a printed table)."""
        return [
            {
                "t_s": round(d.t - self.started, 2),
                "action": d.action,
                "canary_weight": d.weight,
                "failed_checks": d.failed_checks,
                "reason": d.reason,
            }
            for d in self.decisions
        ]

    def table(self) -> str:
        lines = [f"{'t (s)':>6}  {'action':<10} {'canary':>6}  reason"]
        for row in self.rows():
            lines.append(
                f"{row['t_s']:>6.1f}  {row['action']:<10} {row['canary_weight']:>5} %  "
                f"{row['reason']}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.spec.to_dict(),
            "outcome": self.outcome,
            "started": self.started,
            "ended": self.ended,
            "failed_checks": self.failed_checks,
            "max_weight": self.max_weight,
            "weight": self.weight,
            "scaled_down": self.scaled_down,
            "decisions": [d.to_dict() for d in self.decisions],
            "analyses": [a.to_dict() for a in self.analyses],
        }

    def __str__(self) -> str:
        return (
            f"{self.spec.stable} -> {self.spec.canary}: {self.outcome} after "
            f"{self.ended - self.started:.1f} s (highest canary weight {self.max_weight} %, "
            f"{self.failed_checks} failed check(s), {len(self.analyses)} analysis interval(s))"
        )


# ---------------------------------------------------------------------------- the controller


def _summary(results: Sequence[CheckResult]) -> str:
    failing = [r for r in results if not r.passed]
    shown = failing or list(results)
    return "; ".join(f"{r.check.name} {r.reason}" for r in shown)


class _Controller:
    """One cutover's state; ``run()`` does it (see the module doc)."""

    def __init__(
        self,
        cluster: Any,
        spec: CutoverSpec,
        loads: list[Any],
        gate: Gate,
        on_decision: Callable[[Decision], Any] | None,
    ) -> None:
        self.cluster = cluster
        self.spec = spec
        self.loads = loads
        self.gate = gate
        self.on_decision = on_decision
        self.decisions: list[Decision] = []
        self.analyses: list[Analysis] = []
        self.state = "starting"
        self.weight = 0
        self.max_weight = 0
        self.step = 0
        self.failed = 0
        self.outcome = ""
        self.scaled_down: str | None = None
        self.started = time.time()
        self.routing: Routing | None = None
        self.others: list[str] = []
        self._changed = False
        self._stats_ok = False
        self._queues: set[asyncio.Queue[Event | None]] = set()
        self._closed = False
        gate.on_change(self._on_gate)

    # ------------------------------------------------------------------ decisions / events
    def _record(self, decision: Decision) -> Decision:
        self.decisions.append(decision)
        event = decision.to_event(self.spec.virtualservice)
        for queue in list(self._queues):
            queue.put_nowait(event)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def _on_gate(self, action: str, reason: str) -> None:
        if action == "paused":
            self.state = "paused"
        elif action == "resumed":
            self.state = "progressing"
        self._record(Decision(action, self.weight, reason, self.step, failed_checks=self.failed))

    @property
    def events(self) -> list[Event]:
        return [d.to_event(self.spec.virtualservice) for d in self.decisions]

    def subscribe(self) -> AsyncIterator[Event]:
        """The decisions so far, then each new one; ends when the cutover is over."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for event in self.events:
            queue.put_nowait(event)
        if self._closed:
            queue.put_nowait(None)
        else:
            self._queues.add(queue)

        async def stream() -> AsyncIterator[Event]:
            try:
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                self._queues.discard(queue)

        return stream()

    def _close_streams(self) -> None:
        self._closed = True
        for queue in list(self._queues):
            queue.put_nowait(None)
        self._queues.clear()

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
        if getattr(self.cluster, "proxy_stats", None) is not None:
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
        status = getattr(self.cluster, "deployment_status", None)
        if status is not None:
            for deployment in (spec.scale_down, spec.scale_down_canary):
                if deployment:
                    status(deployment)  # ConfigError naming the known deployments

    async def _snapshot(self) -> dict[str, SubsetCounters]:
        assert self.routing is not None
        subsets = (self.spec.stable, self.spec.canary)
        stats = await self.cluster.proxy_stats("gateway", stats_filter(subsets))
        return subset_counters(stats, self.routing.clusters_of(*subsets))

    async def _set_weight(self, weight: int) -> float:
        """Canary ``weight``, stable the rest, other routed subsets 0; returns when the
        gateway holds them (wall clock)."""
        spec = self.spec
        weights = dict.fromkeys(self.others, 0)
        weights[spec.stable] = 100 - weight
        weights[spec.canary] = weight
        self._changed = True
        await self.cluster.set_weights(spec.virtualservice, weights)
        settled = getattr(self.cluster, "config_settled", None)
        if settled is not None:
            await settled(spec.settle_timeout_s)
        self.weight = weight
        self.max_weight = max(self.max_weight, weight)
        return time.time()

    async def _step_to(self, index: int, reason: str) -> None:
        t = time.time()
        self.step = index + 1
        applied = await self._set_weight(self.spec.steps[index])
        self._record(
            Decision("step", self.weight, reason, self.step, t, self.failed, applied_at=applied)
        )

    async def _analyse(self) -> Analysis | str:
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
        outcome: str,
        weight: int,
        action: str,
        reason: str,
        checks: tuple[CheckResult, ...] = (),
    ) -> None:
        t = time.time()
        self.gate.finish(outcome)  # from now on the gates refuse
        applied = await self._set_weight(weight) if self.weight != weight else None
        self.outcome = self.state = outcome  # only once the gateway holds the final weights
        self._record(
            Decision(action, self.weight, reason, self.step, t, self.failed, checks, applied)
        )

    async def _wait_idle(self, subset: str, version: str) -> str:
        """Return once ``subset`` gets no new request for ``idle_window_s`` and has none in
        flight (the gateway's counters; else the load records); LabError after the timeout."""
        spec = self.spec
        start = time.monotonic()
        deadline = start + spec.idle_timeout_s
        poll = min(0.2, spec.idle_window_s / 4)
        if self._stats_ok:
            last = (await self._snapshot())[subset]
            quiet_since = time.monotonic()
            while True:
                await asyncio.sleep(poll)
                now = (await self._snapshot())[subset]
                if now.total != last.total or now.active > 0:
                    last, quiet_since = now, time.monotonic()
                elif time.monotonic() - quiet_since >= spec.idle_window_s:
                    return (
                        f"gateway: no new request to {subset} for {spec.idle_window_s:g} s, "
                        f"none in flight (upstream_rq_total {now.total})"
                    )
                if time.monotonic() > deadline:
                    break
        else:
            while time.monotonic() < deadline:
                await asyncio.sleep(poll)
                t1 = time.time()
                recent = window_records(self.loads, t1 - spec.idle_window_s - 60.0, t1)
                last_seen = max((r.ended for r in recent if r.version == version), default=0.0)
                if time.monotonic() - start >= spec.idle_window_s and (
                    t1 - last_seen >= spec.idle_window_s
                ):
                    return f"load: no answer from {version} for {spec.idle_window_s:g} s"
        raise LabError(
            f"{subset} still got traffic {spec.idle_timeout_s:g} s after the cutover; "
            "not scaling it down"
        )

    async def _scale_down(self, deployment: str, subset: str, version: str) -> None:
        try:
            why = await self._wait_idle(subset, version)
        except LabError as exc:
            self._record(Decision("scale-down", self.weight, f"skipped: {exc}", self.step))
            return
        await self.cluster.scale(deployment, 0)
        self.scaled_down = deployment
        self._record(
            Decision("scale-down", self.weight, f"deployment/{deployment} to 0: {why}", self.step)
        )

    # ------------------------------------------------------------------ the loop
    async def _progress(self) -> None:
        spec = self.spec
        last = len(spec.steps) - 1
        index = 0
        self.state = "paused" if self.gate.paused else "progressing"
        await self._step_to(0, f"start: {spec.canary} gets {spec.steps[0]} %")
        while True:
            result = await self._analyse()
            if result == "abort":
                await self._finish("aborted", 0, "rollback", self.gate.command_reason)
                return
            if result == "promote":
                await self._finish("promoted", 100, "promote", self.gate.command_reason)
                return
            assert isinstance(result, Analysis)
            summary = _summary(result.results)
            if result.passed:
                if self.gate.paused:
                    self._record(
                        Decision(
                            "hold",
                            self.weight,
                            f"paused (checks pass: {summary})",
                            self.step,
                            failed_checks=self.failed,
                            checks=result.results,
                        )
                    )
                    continue
                if index == last:
                    await self._finish(
                        "promoted",
                        100,
                        "promote",
                        f"all {len(spec.steps)} steps passed: {summary}",
                        result.results,
                    )
                    return
                index += 1
                self.step = index + 1
                t = time.time()
                applied = await self._set_weight(spec.steps[index])
                self._record(
                    Decision(
                        "step",
                        self.weight,
                        f"checks passed at {spec.steps[index - 1]} %: {summary}",
                        self.step,
                        t,
                        self.failed,
                        result.results,
                        applied,
                    )
                )
                continue
            self.failed += 1
            if self.failed >= spec.threshold:
                await self._finish(
                    "rolled-back",
                    0,
                    "rollback",
                    f"{self.failed} failed check(s) reached threshold {spec.threshold}: {summary}",
                    result.results,
                )
                return
            self._record(
                Decision(
                    "hold",
                    self.weight,
                    f"check failed ({self.failed} of {spec.threshold} before rollback): {summary}",
                    self.step,
                    failed_checks=self.failed,
                    checks=result.results,
                )
            )

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
            if not self.outcome:
                self.gate.finish("failed")
                self.state = "failed" if self.state != "starting" else "refused"
        try:
            if self.outcome == "promoted" and spec.scale_down:
                await self._scale_down(spec.scale_down, spec.stable, spec.stable_version)
            elif self.outcome != "promoted" and spec.scale_down_canary:
                await self._scale_down(spec.scale_down_canary, spec.canary, spec.canary_version)
        finally:
            self._close_streams()
        return CutoverResult(
            spec=spec,
            outcome=self.outcome,
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
            if self._changed and not self.outcome:
                self.outcome = "aborted"
                self.gate.finish("aborted")
                self.state = "aborted"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._set_weight(0), 15)
                    self._record(Decision("rollback", self.weight, why, self.step))
        finally:
            self._close_streams()


# ---------------------------------------------------------------------------- entry points


async def progressive_cutover(
    cluster: Any,
    virtualservice: str,
    stable: str,
    canary: str,
    *,
    steps: Sequence[int] | None = None,
    step_weight: int | None = None,
    max_weight: int | None = None,
    interval_s: float = 5.0,
    checks: Iterable[str | Mapping[str, Any] | Check] | str = DEFAULT_CHECKS,
    threshold: int = 2,
    load: Any = None,
    stable_version: str | None = None,
    canary_version: str | None = None,
    scale_down: str | None = None,
    scale_down_canary: str | None = None,
    idle_window_s: float = 1.0,
    idle_timeout_s: float = 60.0,
    settle_timeout_s: float = 30.0,
    gate: Gate | None = None,
    on_decision: Callable[[Decision], Any] | None = None,
) -> CutoverResult:
    """Move ``virtualservice``'s traffic from subset ``stable`` to ``canary`` step by step.

    ``steps`` (default 10, 25, 50, 100) or Flagger's ``step_weight``/``max_weight`` give the
    canary weights; ``interval_s`` is the analysis window at each; ``checks`` are names or
    Flagger-style dicts (see ``lab_app.progressive.checks``); ``threshold`` failed checks roll
    back. ``load`` is the ``LoadRun`` (or runs) whose records the load checks read.
    ``stable_version``/``canary_version`` are the ``x-app-version`` of each subset (default:
    the subset name without ``version-``). ``scale_down``: the stable version's Deployment,
    scaled to 0 after a promotion once idle; ``scale_down_canary``: the canary's, after a
    rollback. ``gate``: manual pause/promote/abort (``start_progressive`` makes one).

    Raises ConfigError/ManifestError before any weight changes on bad input.
    """
    spec = make_spec(
        virtualservice,
        stable,
        canary,
        steps=steps,
        step_weight=step_weight,
        max_weight=max_weight,
        interval_s=interval_s,
        checks=checks,
        threshold=threshold,
        stable_version=stable_version,
        canary_version=canary_version,
        scale_down=scale_down,
        scale_down_canary=scale_down_canary,
        idle_window_s=idle_window_s,
        idle_timeout_s=idle_timeout_s,
        settle_timeout_s=settle_timeout_s,
    )
    controller = _Controller(cluster, spec, _load_sources(load), gate or Gate(), on_decision)
    return await controller.run()


class ProgressiveCutover:
    """A cutover running in the background (``start_progressive``): gates, decisions, result.

    >>> ctl = start_progressive(cluster, "zero-downtime-rollingupdate", "version-v1",
    ...                         "version-v2", load=run)
    >>> ctl.pause(); ...; ctl.promote()      # from any later cell
    >>> result = await ctl
    """

    def __init__(self, controller: _Controller) -> None:
        self._controller = controller
        self.spec = controller.spec
        self.gate = controller.gate
        self._task: asyncio.Task[CutoverResult] = asyncio.get_running_loop().create_task(
            controller.run(), name=f"zdlab-progressive {controller.spec.virtualservice}"
        )

    def __await__(self) -> Generator[Any, None, CutoverResult]:
        return self._task.__await__()

    @property
    def task(self) -> asyncio.Task[CutoverResult]:
        return self._task

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def state(self) -> str:
        """starting, progressing, paused, promoted, rolled-back, aborted, failed or refused."""
        return self._controller.state

    @property
    def weight(self) -> int:
        """The canary's current weight (percent)."""
        return self._controller.weight

    @property
    def decisions(self) -> list[Decision]:
        return list(self._controller.decisions)

    @property
    def analyses(self) -> list[Analysis]:
        return list(self._controller.analyses)

    @property
    def events(self) -> list[Event]:
        return self._controller.events

    def subscribe(self) -> AsyncIterator[Event]:
        """Decision events for a chart (``chart.follow(ctl.subscribe())``)."""
        return self._controller.subscribe()

    def pause(self, reason: str = "paused by hand") -> None:
        self.gate.pause(reason)

    def resume(self, reason: str = "resumed by hand") -> None:
        self.gate.resume(reason)

    def promote(self, reason: str = "promoted by hand: remaining steps and checks skipped") -> None:
        self.gate.promote(reason)

    def abort(self, reason: str = "aborted by hand") -> None:
        self.gate.abort(reason)

    def cancel(self) -> None:
        """Cancel the task; traffic goes back to the stable subset first (best effort)."""
        self._task.cancel()

    def __repr__(self) -> str:
        return (
            f"<ProgressiveCutover {self.spec.stable} -> {self.spec.canary} {self.state} "
            f"canary {self.weight} % decisions={len(self._controller.decisions)}>"
        )


def start_progressive(
    cluster: Any,
    virtualservice: str,
    stable: str,
    canary: str,
    **options: Any,
) -> ProgressiveCutover:
    """``progressive_cutover`` as a background task on the running loop; returns its handle.

    Bad parameters raise ConfigError here, at once; what needs the cluster (the
    VirtualService, the subsets) is checked first thing in the task and raised by
    ``await handle``, still before any weight changes.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError(
            "start_progressive needs a running event loop (a notebook cell or an async "
            "function); in a script, await progressive_cutover(...)"
        ) from None
    gate = options.pop("gate", None) or Gate()
    on_decision = options.pop("on_decision", None)
    load = options.pop("load", None)
    known = set(inspect.signature(make_spec).parameters) - {"virtualservice", "stable", "canary"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"start_progressive: unknown option(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known | {'gate', 'on_decision', 'load'}))})"
        )
    spec = make_spec(virtualservice, stable, canary, **options)
    return ProgressiveCutover(_Controller(cluster, spec, _load_sources(load), gate, on_decision))
