"""What a cutover decided and how it ended: phases, actions, ``Decision``, ``CutoverResult``.

The names are ``StrEnum``s rather than bare strings so a typo is a type error and every
value is listed in one place; they still compare equal to the strings the notebooks, the
experiments and the JSON results use (``Action.STEP == "step"``), and the dicts meant for
JSON carry plain strings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lab_app.cluster.events import Event, EventKind
from lab_app.progressive.analysis import Window
from lab_app.progressive.checks import CheckResult
from lab_app.progressive.spec import CutoverSpec


class Action(StrEnum):
    """What one decision did (Flagger's and Argo Rollouts' vocabulary)."""

    STEP = "step"  # checks passed (or the start): the canary gets the next weight
    HOLD = "hold"  # a check failed or the cutover is paused: the weight stays
    PROMOTE = "promote"  # 100 % to the canary
    ROLLBACK = "rollback"  # 100 % back to stable
    PAUSED = "paused"  # a manual gate
    RESUMED = "resumed"
    SCALE_DOWN = "scale-down"  # the retired version's Deployment to 0 (or why not)


class Outcome(StrEnum):
    """How a cutover ended."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"  # the checks failed ``threshold`` times
    ABORTED = "aborted"  # by hand, by a cancel or after an error


class Phase(StrEnum):
    """Where a cutover is now (``ProgressiveCutover.state``); ends in an ``Outcome``'s value,
    ``failed`` (an error after the first weight change) or ``refused`` (before it)."""

    STARTING = "starting"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    ABORTED = "aborted"
    FAILED = "failed"
    REFUSED = "refused"


ACTIONS: tuple[Action, ...] = tuple(Action)
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One decision of the controller, at wall-clock time ``t``."""

    action: Action
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
            "action": str(self.action),
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

    def summary(self) -> str:
        """The failing checks' reasons (all the checks' when every one passed)."""
        return summary(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "passed": self.passed,
            **self.window.to_dict(),
            "checks": [r.to_dict() for r in self.results],
        }


def summary(results: Sequence[CheckResult]) -> str:
    failing = [r for r in results if not r.passed]
    shown = failing or list(results)
    return "; ".join(f"{r.check.name} {r.reason}" for r in shown)


@dataclass
class CutoverResult:
    """How a cutover ended, with every decision and every analysis window."""

    spec: CutoverSpec
    outcome: Outcome
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
        return self.outcome == Outcome.PROMOTED

    @property
    def rolled_back(self) -> bool:
        return self.outcome in (Outcome.ROLLED_BACK, Outcome.ABORTED)

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
                "action": str(d.action),
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
            "outcome": str(self.outcome),
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
