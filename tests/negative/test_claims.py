"""Each claim the notebooks and experiments make, fed a broken run: the check must fail.

A check that passes whatever it is given proves nothing. Every test here builds the smallest
run that breaks one claim (one 503 in a cutover, a run stopped early, errors before the
rollout, an empty comparison, a share 6 points off at n=1,500, ...) and asserts that the very
function the notebook calls raises ``ClaimFailed`` naming that claim; a positive control beside
it shows the same check passes on a good run, so the failure is not the check's only answer.
"""

from __future__ import annotations

import random

import pytest

from lab_app import claims
from lab_app.claims import ClaimFailed, ShareStep
from lab_app.load.records import Record
from lab_app.load.results import LoadResults


def _results(**fields: object) -> LoadResults:
    base: dict[str, object] = {
        "url": "http://127.0.0.1:1/k8s/demo",
        "label": "demo",
        "requested_qps": 100.0,
        "requested_duration": 10.0,
        "actual_duration": 10.0,
        "requests": 1000,
        "codes": {200: 1000},
        "done": True,
        "stopped_early": False,
    }
    base.update(fields)
    return LoadResults(**base)  # type: ignore[arg-type]


def _rec(sent: float, code: int = 200, version: str = "v1") -> Record:
    err = "" if code > 0 else "reset"
    return Record(sent, sent, sent + 0.001, code, err, version if code > 0 else "", "", 0, 0, 0)


# ------------------------------------------------------------------ zero errors, full runs
def test_zero_errors_fails_on_one_503_in_a_cutover() -> None:
    claims.check_zero_errors(_results())  # control: 1,000 x 200 over a full run
    with pytest.raises(ClaimFailed, match=r"saw zero errors.*1 of 1000.*503"):
        claims.check_zero_errors(_results(codes={200: 999, 503: 1}))


def test_zero_errors_fails_on_a_run_stopped_early() -> None:
    broken = _results(stopped_early=True, actual_duration=4.0, requests=400, codes={200: 400})
    with pytest.raises(ClaimFailed, match=r"ran in full.*stopped early"):
        claims.check_zero_errors(broken)


def test_zero_errors_fails_on_an_unfinished_run() -> None:
    with pytest.raises(ClaimFailed, match=r"ran in full.*not finished"):
        claims.check_zero_errors(_results(done=False))


def test_zero_errors_fails_when_the_run_sent_too_few_requests() -> None:
    claims.check_full_run(_results(requests=980, codes={200: 980}))  # 98 %: enough
    with pytest.raises(ClaimFailed, match=r"ran in full.*979 requests sent.*1000"):
        claims.check_zero_errors(_results(requests=979, codes={200: 979}))


def test_zero_errors_counts_cancelled_requests_in_flight() -> None:
    """Requests cut when a run was stopped are recorded as -1 (class ``cancelled``): errors."""
    broken = _results(codes={200: 998, -1: 2})
    with pytest.raises(ClaimFailed, match=r"2 of 1000"):
        claims.check_zero_errors(broken)


# ------------------------------------------------------------------ naive rollout's errors
def _naive_run(errors_at: list[float]) -> list[Record]:
    recs = [_rec(t / 10) for t in range(200)]  # 20 s at 10 qps
    return recs + [_rec(t, code=-1) for t in errors_at]


def _check_naive(records: list[Record]) -> claims.RolloutErrors:
    return claims.check_errors_from_rollout(
        records, rollout_start=5.0, rollout_end=8.0, propagation_s=1.0, timeout_s=3.0, name="gw"
    )


def test_naive_errors_must_come_from_the_rollout() -> None:
    seen = _check_naive(_naive_run([5.5, 7.0, 11.9]))  # control: all in [5, 12]
    assert seen.inside == 3 and seen.before == 0 and seen.requests_before == 50
    with pytest.raises(ClaimFailed, match=r"errors came from the rollout.*1 errors.*before"):
        _check_naive(_naive_run([2.0, 6.0]))  # steady state dropped a request


def test_naive_errors_after_the_window_fail() -> None:
    with pytest.raises(ClaimFailed, match=r"after the rollout's window"):
        _check_naive(_naive_run([6.0, 15.0]))


def test_naive_rollout_without_errors_fails() -> None:
    with pytest.raises(ClaimFailed, match=r"lost no request"):
        _check_naive(_naive_run([]))


# ------------------------------------------------------------------ weighted shares
def _step(v2_share: float, n: int = 1500, weights: tuple[int, int] = (90, 10)) -> ShareStep:
    v2 = round(n * v2_share / 100)
    return ShareStep({"v1": weights[0], "v2": weights[1]}, {"v1": 100 * (n - v2) / n,
                     "v2": 100 * v2 / n}, n)  # fmt: skip


def test_share_bound_is_binomial() -> None:
    # 4 standard errors at 10 % of 1,500: 4 * sqrt(0.09 / 1500) = 3.1 points; floor 1 point
    assert claims.share_bound_points(10, 1500) == pytest.approx(3.098, abs=0.01)
    assert claims.share_bound_points(0, 1500) == 1.0
    assert claims.share_bound_points(100, 1500) == 1.0


def test_shares_fail_six_points_off_at_n_1500() -> None:
    claims.check_shares([_step(12.0)])  # control: 2 points off is within 3.1
    with pytest.raises(ClaimFailed, match=r"shares follow the weights.*v1 off by 6\.0"):
        claims.check_shares([_step(16.0)])  # an 84/16 split for 90/10


def test_shares_fail_on_a_version_with_weight_zero_answering() -> None:
    step = ShareStep({"v1": 0, "v2": 100}, {"v1": 2.0, "v2": 98.0}, 1500)
    with pytest.raises(ClaimFailed, match=r"v1 off by 2.0"):
        claims.check_shares([step])


def test_shares_fail_with_nothing_measured() -> None:
    with pytest.raises(ClaimFailed, match=r"no step was measured"):
        claims.check_shares([])
    with pytest.raises(ClaimFailed, match=r"step 1 has 12 requests"):
        claims.check_shares([_step(10.0, n=12)])


def test_binomial_bound_false_alarm_rate_is_small() -> None:
    """Real Envoy picks are independent draws: a fair 90/10 split passes 200 times in 200."""
    rng = random.Random(7)
    for _ in range(200):
        v2 = sum(rng.random() < 0.10 for _ in range(1500))
        claims.check_shares([_step(100 * v2 / 1500)])


# ------------------------------------------------------------------ retiring v1
def test_retired_fails_when_v1_answers_after_scale_down() -> None:
    good = [_rec(t, version="v2") for t in (10.0, 10.5, 11.0)]
    assert claims.check_retired(good, retired="v1", after=10.0, keep="v2") == 3
    with pytest.raises(ClaimFailed, match=r"only v2 answers.*\('v1', 200\)"):
        claims.check_retired([*good, _rec(10.7)], retired="v1", after=10.0, keep="v2")
    with pytest.raises(ClaimFailed, match=r"no request was sent after"):
        claims.check_retired(good, retired="v1", after=20.0, keep="v2")


# ------------------------------------------------------------------ comparison
STRATEGIES = {"plain": "plain rolling update", "cutover": "Istio subset cutover"}


def test_comparison_fails_when_empty_or_a_strategy_is_missing() -> None:
    with pytest.raises(ClaimFailed, match=r"every strategy is compared.*plain, cutover"):
        claims.check_comparison([], strategies=STRATEGIES)
    rows = [{"scenario": "plain rolling update (gateway)", "non_2xx": 12}]
    with pytest.raises(ClaimFailed, match=r"no saved result for cutover"):
        claims.check_comparison(rows, strategies=STRATEGIES)


def test_comparison_checks_the_verdicts() -> None:
    rows = [
        {"scenario": "plain rolling update (gateway)", "non_2xx": 12},
        {"scenario": "Istio subset cutover (demo)", "non_2xx": 0},
    ]
    kw = {"strategies": STRATEGIES, "zero_errors": ["cutover"], "with_errors": ["plain"]}
    claims.check_comparison(rows, **kw)  # type: ignore[arg-type]
    rows[1]["non_2xx"] = 1
    with pytest.raises(ClaimFailed, match=r"cutover gives zero errors"):
        claims.check_comparison(rows, **kw)  # type: ignore[arg-type]
    rows[1]["non_2xx"], rows[0]["non_2xx"] = 0, 0
    with pytest.raises(ClaimFailed, match=r"plain loses requests"):
        claims.check_comparison(rows, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ progressive rollback
def test_rollback_bound_comes_from_the_plan() -> None:
    steps = [10, 25, 50, 100]
    assert claims.check_rollback_at_first_step(10, "rolled-back", steps) == 10
    with pytest.raises(ClaimFailed, match=r"rolled back at the first step \(10 %\).*25 %"):
        claims.check_rollback_at_first_step(25, "rolled-back", steps)
    with pytest.raises(ClaimFailed, match=r"ended 'promoted'"):
        claims.check_rollback_at_first_step(10, "promoted", steps)
