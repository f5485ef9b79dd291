"""The lab's claims as functions that fail when the claim is false.

Why a module of its own: a notebook that *proves* a rollout is safe is only worth the check it
runs. Each claim a notebook or experiment makes ("zero errors", "the errors came from the
rollout", "the shares follow the weights", "every strategy is compared", "the bad build was
rolled back at the first step") lives here once, is called by the notebooks and the
experiments alike, and is tested in ``tests/negative/`` by feeding it a broken run.

Every check raises :class:`ClaimFailed` (an ``AssertionError``, so a notebook cell fails the
same way a bare ``assert`` does) with a message that starts with the claim it was checking.
Checks that pass return what they measured, so the notebook can print it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: share of ``QPS x duration`` a run must have sent for a zero-error claim to count
MIN_SENT_FRACTION = 0.98
#: a share step passes within this many binomial standard errors of its weight ...
SHARE_SIGMAS = 4.0
#: ... but never tighter than this many percentage points
SHARE_FLOOR_POINTS = 1.0


class ClaimFailed(AssertionError):
    """A claim did not hold; ``claim`` names it and the message says what was seen."""

    def __init__(self, claim: str, detail: str) -> None:
        super().__init__(f"claim '{claim}' failed: {detail}")
        self.claim = claim
        self.detail = detail


class _Record(Protocol):
    sent: float
    ended: float
    code: int
    error: str
    version: str


class _Results(Protocol):
    """What the checks read of a ``LoadResults`` (kept narrow so tests can build broken ones)."""

    label: str
    requests: int
    requested_qps: float
    requested_duration: float
    actual_duration: float
    done: bool
    stopped_early: bool
    codes: dict[int, int]

    @property
    def non_2xx(self) -> int: ...


def _ok(code: int) -> bool:
    return 200 <= code < 300


# --------------------------------------------------------------------------- full runs
def expected_requests(results: _Results) -> float:
    """``QPS x duration`` the run was asked for; an open-ended run counts the time it ran."""
    if results.requested_qps <= 0:
        return 0.0  # "as fast as possible": no schedule to compare with
    seconds = results.requested_duration or results.actual_duration
    return results.requested_qps * seconds


def check_full_run(
    results: _Results, *, name: str = "", min_fraction: float = MIN_SENT_FRACTION
) -> int:
    """The load ran to its end and sent at least ``min_fraction`` of ``QPS x duration``.

    A zero-error claim over a run that stopped early, or that sent a tenth of its schedule, says
    nothing: the errors would have come in the part that did not run. Returns the request count.
    """
    claim = f"{name or results.label or 'load'} ran in full"
    if not results.done:
        raise ClaimFailed(claim, "the run has not finished (done is False)")
    if results.stopped_early:
        raise ClaimFailed(claim, f"the run was stopped early after {results.actual_duration:.1f} s")
    want = expected_requests(results)
    seconds = results.requested_duration or results.actual_duration
    if results.requests < min_fraction * want:
        raise ClaimFailed(
            claim,
            f"{results.requests} requests sent, fewer than {min_fraction:.0%} of "
            f"{results.requested_qps:g} qps x {seconds:g} s"
            f" = {want:.0f}",
        )
    if results.requests == 0:
        raise ClaimFailed(claim, "no request was sent")
    return results.requests


def check_zero_errors(
    results: _Results, *, name: str = "", min_fraction: float = MIN_SENT_FRACTION
) -> int:
    """Zero non-2xx answers over a run that ran in full (see :func:`check_full_run`)."""
    label = name or results.label or "load"
    check_full_run(results, name=label, min_fraction=min_fraction)
    if results.non_2xx:
        raise ClaimFailed(
            f"{label} saw zero errors",
            f"{results.non_2xx} of {results.requests} answers were not 2xx: codes {results.codes}",
        )
    return results.requests


# --------------------------------------------------------------------------- naive rollout
@dataclass(frozen=True)
class RolloutErrors:
    """Where a naive rollout's errors fell, relative to the rollout's window."""

    before: int  # errors among requests sent before the rollout started
    inside: int  # errors sent within [start, end bound]
    after: int  # errors sent after the end bound
    requests_before: int
    window: tuple[float, float]


def check_errors_from_rollout(
    records: Iterable[_Record],
    *,
    rollout_start: float,
    rollout_end: float,
    propagation_s: float,
    timeout_s: float,
    name: str = "load",
) -> RolloutErrors:
    """Every error of a naive rollout falls in its window, and there were some.

    The window is [rollout start, rollout complete + propagation delay + request timeout]: the
    last pod stops at the end of the rollout, its endpoint removal reaches the proxies up to a
    propagation delay later, and a request sent then may take a timeout to fail. A lab that
    dropped requests in steady state would show errors before the rollout: that fails here.
    """
    end = rollout_end + propagation_s + timeout_s
    before = inside = after = sent_before = 0
    for r in records:
        if r.sent < rollout_start:
            sent_before += 1
        if _ok(r.code):
            continue
        if r.sent < rollout_start:
            before += 1
        elif r.sent <= end:
            inside += 1
        else:
            after += 1
    seen = RolloutErrors(before, inside, after, sent_before, (rollout_start, end))
    claim = f"{name}: the errors came from the rollout"
    if sent_before == 0:
        raise ClaimFailed(claim, "no request was sent before the rollout: no steady state seen")
    if before:
        raise ClaimFailed(
            claim, f"{before} errors among the {sent_before} requests sent before the rollout"
        )
    if after:
        raise ClaimFailed(
            claim, f"{after} errors sent after the rollout's window ended ({end - rollout_end:.1f}"
            " s after it completed)",
        )  # fmt: skip
    if not inside:
        raise ClaimFailed(claim, "the naive rollout lost no request")
    return seen


# --------------------------------------------------------------------------- weighted shares
def share_bound_points(weight_pct: float, n: int) -> float:
    """Allowed gap, in points, between a weight and the share measured over ``n`` requests.

    Envoy picks each request's destination independently with probability weight/total, so a
    share over n requests is binomial: 4 standard errors (a false alarm about once in 16,000
    steps) around the weight, never tighter than 1 point. At 90/10 and n=1,500 that is 3.1
    points, not the fixed 5 points (6.5 standard errors) that let an 85/15 split pass.
    """
    if n <= 0:
        return math.inf
    p = min(max(weight_pct / 100.0, 0.0), 1.0)
    return max(SHARE_FLOOR_POINTS, SHARE_SIGMAS * 100.0 * math.sqrt(p * (1.0 - p) / n))


@dataclass(frozen=True)
class ShareStep:
    """One weight step: expected and measured percent per version, the sample, the bound."""

    weights: Mapping[str, float]  # version -> percent expected
    measured: Mapping[str, float]  # version -> percent measured
    requests: int

    def bound(self, version: str) -> float:
        return share_bound_points(self.weights.get(version, 0.0), self.requests)

    def line(self) -> str:
        parts = [
            f"{v} {self.weights.get(v, 0.0):g} % -> {self.measured.get(v, 0.0):.1f} % "
            f"(bound +/-{self.bound(v):.1f})"
            for v in sorted(set(self.weights) | set(self.measured))
        ]
        return f"n={self.requests}: " + ", ".join(parts)


def expected_percent(weights: Mapping[str, float], prefix: str = "version-") -> dict[str, float]:
    """Subset weights -> percent per version (``version-v1: 90`` -> ``v1: 90.0``)."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"weights must not all be 0: {dict(weights)}")
    return {k.removeprefix(prefix): 100.0 * w / total for k, w in weights.items()}


def measured_percent(records: Iterable[_Record], start: float, end: float) -> tuple[dict, int]:
    """Percent of 2xx answers per version among requests sent in [start, end); and their n."""
    counts: Counter[str] = Counter(
        r.version or "?" for r in records if start <= r.sent < end and _ok(r.code)
    )
    n = sum(counts.values())
    return ({v: 100.0 * c / n for v, c in counts.items()} if n else {}), n


def check_shares(steps: Sequence[ShareStep], *, name: str = "cutover", min_n: int = 100) -> None:
    """Every step's measured share of every version is within its binomial bound."""
    claim = f"{name}: the shares follow the weights"
    if not steps:
        raise ClaimFailed(claim, "no step was measured")
    for i, step in enumerate(steps, start=1):
        if step.requests < min_n:
            raise ClaimFailed(claim, f"step {i} has {step.requests} requests (< {min_n})")
        for version in sorted(set(step.weights) | set(step.measured)):
            gap = abs(step.measured.get(version, 0.0) - step.weights.get(version, 0.0))
            if gap > step.bound(version):
                raise ClaimFailed(claim, f"step {i}: {step.line()}: {version} off by {gap:.1f}")


# --------------------------------------------------------------------------- retiring a version
def check_retired(
    records: Iterable[_Record], *, retired: str, after: float, keep: str, name: str = "load"
) -> int:
    """After ``after`` (the scale-down), only ``keep`` answered and every answer was 2xx."""
    claim = f"{name}: only {keep} answers after {retired} was scaled to 0"
    late = [r for r in records if r.sent >= after]
    if not late:
        raise ClaimFailed(claim, "no request was sent after the scale-down")
    wrong = Counter(
        (r.version or "?", r.code) for r in late if r.version != keep or not _ok(r.code)
    )
    if wrong:
        raise ClaimFailed(claim, f"{sum(wrong.values())} of {len(late)}: {dict(wrong)}")
    return len(late)


# --------------------------------------------------------------------------- comparison
def check_comparison(
    rows: Sequence[Mapping[str, Any]],
    *,
    strategies: Mapping[str, str],
    zero_errors: Iterable[str] = (),
    with_errors: Iterable[str] = (),
) -> dict[str, list[Mapping[str, Any]]]:
    """Each strategy has a row (scenario name starting with its prefix), and the verdicts hold.

    ``strategies`` maps a strategy to the prefix of its rows' ``scenario``; ``zero_errors`` and
    ``with_errors`` name strategies whose every row must have 0 / more than 0 non-2xx.
    """
    found = {
        key: [r for r in rows if str(r.get("scenario", "")).startswith(prefix)]
        for key, prefix in strategies.items()
    }
    missing = [key for key, got in found.items() if not got]
    if missing:
        raise ClaimFailed(
            "every strategy is compared",
            f"no saved result for {', '.join(missing)}: run the notebooks before this one "
            f"(make lab runs them in order)",
        )
    for key in zero_errors:
        bad = [r["scenario"] for r in found[key] if r.get("non_2xx", 0) != 0]
        if bad:
            raise ClaimFailed(f"{key} gives zero errors", f"rows with errors: {bad}")
    for key in with_errors:
        bad = [r["scenario"] for r in found[key] if r.get("non_2xx", 0) == 0]
        if bad:
            raise ClaimFailed(f"{key} loses requests", f"rows without errors: {bad}")
    return found


# --------------------------------------------------------------------------- progressive delivery
def check_rollback_at_first_step(max_weight: int, outcome: str, steps: Sequence[int]) -> int:
    """A bad canary is rolled back before its weight passes the plan's first step.

    The bound comes from the plan (``steps``), not from the run: whatever the run did, a bad
    build seen at ``steps[0]`` must never get more traffic than that.
    """
    claim = f"the bad build is rolled back at the first step ({steps[0]} %)"
    if outcome != "rolled-back":
        raise ClaimFailed(claim, f"the cutover ended '{outcome}'")
    if max_weight > steps[0]:
        raise ClaimFailed(claim, f"its weight reached {max_weight} %")
    return max_weight
