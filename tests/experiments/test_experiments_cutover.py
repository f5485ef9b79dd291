"""subset-cutover: weights move traffic with zero errors, shares follow the weights."""

from __future__ import annotations

from lab_app import claims
from lab_app.experiments import run_subset_cutover


async def test_subset_cutover_has_zero_errors_and_shares_follow_the_weights() -> None:
    result = await run_subset_cutover(qps=200, step_seconds=6, longtask_seconds=3, longtask_qps=0.5)
    print(result.verdict())
    claims.check_zero_errors(result.load("demo"), name="cutover /k8s/demo")
    claims.check_zero_errors(result.load("longTask"), name="cutover /k8s/longTask")
    assert result.load("longTask").requests >= 10
    steps = [s for s in result.steps if "weights" in s]
    assert [s["weights"] for s in steps[1:]] == [
        {"version-v1": 90, "version-v2": 10},
        {"version-v1": 50, "version-v2": 50},
        {"version-v1": 0, "version-v2": 100},
    ]
    measured = []
    for step in steps:
        print(step["weights"], step["measured"], step["bound_points"], step["requests"])
        assert step["requests"] >= 800 and step["within_bound"], step
        pct = {v: 100 * x for v, x in step["measured"].items()}
        expected = {v: 100 * x for v, x in step["expected"].items()}
        measured.append(claims.ShareStep(expected, pct, step["requests"] - step["non_2xx"]))
    claims.check_shares(measured, name="subset-cutover experiment")
    # v1 was scaled down only after its last request; after that everything is v2
    final = result.steps[-1]
    assert final["action"] == "v1 scaled to 0" and final["measured"] == {"v2": 1.0}
    data = result.to_dict()
    assert data["non_2xx"] == 0 and len(data["steps"]) == len(result.steps)
