"""Progressive cutovers on the embedded backend: real pods, a real Envoy gateway, real load.

Statistics of the bad-canary test: v3 answers 5 % of /k8s/demo with 500 and the threshold
is a 99 % success rate. At 200 qps, a 3 s interval and a first step of 20 %, the canary gets
about 120 requests per interval; a 5 % build then passes one interval with probability
``pass_probability(120, 0.05, 99)`` = 1.6 % (0 or 1 error among 120), and a good build never
fails (it answers no error at all). The rollback needs 2 failed intervals (threshold 2); the
weight could only pass the step after the first failing check if two intervals in a row
passed (< 0.03 %). The good-canary checks keep a minimum of 20 requests per window, far
below the ~120 expected, so a good canary is not failed for lack of samples either.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from progressive_testlib import (
    APP,
    deploy,
    eventually,
    records_sent_after,
    routing,
    weight_events,
)

from lab_app import claims
from lab_app.errors import ConfigError, ManifestError
from lab_app.load import Record
from lab_app.progressive import progressive_cutover, start_progressive
from lab_app.progressive.analysis import stats_filter, subset_counters

QPS = 200.0
pytestmark = pytest.mark.timeout(120)


async def test_good_canary_is_promoted_with_zero_errors(cluster, load) -> None:
    await deploy(cluster, ["v1", "v2"], stable="version-v1")
    run = load(cluster.gateway_url() + "/k8s/demo", QPS)
    result = await progressive_cutover(
        cluster,
        APP,
        "version-v1",
        "version-v2",
        steps=[20, 50, 100],
        interval_s=2.5,
        load=run,
        scale_down=f"{APP}-v1",
    )
    assert result.promoted, result.table()
    assert [d.weight for d in result.decisions if d.action == "step"] == [20, 50, 100]
    assert result.failed_checks == 0
    assert all(a.passed for a in result.analyses)
    # the analysis saw the canary at each step, from both sources, and they agree
    for analysis in result.analyses:
        canary = analysis.window.load["canary"]
        assert canary.requests >= 60 and canary.failures == 0
        seen = analysis.window.gateway["canary"].completed
        assert abs(seen - canary.requests) <= max(3, canary.requests // 20)  # window edges
    # the old version was scaled down only after the gateway stopped sending it requests
    scale = result.decision("scale-down")
    assert scale is not None and "no new request to version-v1" in scale.reason
    assert result.scaled_down == f"{APP}-v1"
    promoted_at = result.decision("step", 100)
    assert promoted_at is not None and promoted_at.applied_at is not None
    await eventually(
        lambda: len(records_sent_after(run, promoted_at.applied_at)) >= 300,
        20,
        message="300 requests after the last step",
    )
    run.stop(drain=True)
    final = await run
    assert final.requests > 1500
    claims.check_zero_errors(final, name="progressive promotion")
    assert {r.version for r in records_sent_after(run, promoted_at.applied_at + 0.5)} == {"v2"}
    view = await routing(cluster)
    assert all(shares.get("version-v2") == 1.0 for shares in view.shares())
    await eventually(
        _no_pods(cluster, "v1"), 45, interval=0.2, message="v1's pod gone after scale-down"
    )


def _no_pods(cluster, version):
    async def check() -> bool:
        return not await cluster.pods({"version": version})

    return check


async def test_bad_canary_is_rolled_back_and_traffic_returns_to_stable(cluster, load) -> None:
    await deploy(cluster, ["v2", "v3"], stable="version-v2")
    run = load(cluster.gateway_url() + "/k8s/demo", QPS)
    steps = [20, 50, 100]
    result = await progressive_cutover(
        cluster,
        APP,
        "version-v2",
        "version-v3",
        steps=steps,
        interval_s=3.0,
        threshold=2,
        load=run,
        scale_down_canary=f"{APP}-v3",
    )
    assert result.outcome == "rolled-back", result.table()
    assert result.failed_checks == 2
    # the weight never passed the step after the first failing check
    first_fail = next(i for i, a in enumerate(result.analyses) if not a.passed)
    failed_at = result.analyses[first_fail].window.weight
    limit = steps[min(steps.index(failed_at) + 1, len(steps) - 1)]
    assert result.max_weight <= limit, result.table()
    later = [a.window.weight for a in result.analyses[first_fail:]]
    assert max(later) <= limit
    # what failed is the success rate of v3's own requests (v3 really answered 500s)
    bad = result.analyses[first_fail]
    failing = {r.check.name for r in bad.results if not r.passed}
    assert "request-success-rate" in failing
    assert bad.window.load["canary"].codes.get(500, 0) > 0
    assert bad.window.load["stable"].failures == 0
    rollback = result.decision("rollback")
    assert rollback is not None and rollback.weight == 0 and rollback.applied_at is not None
    assert "threshold 2" in rollback.reason
    # after the rollback: every request goes to v2 (load records) ...
    after = rollback.applied_at + 0.5
    await eventually(
        lambda: len(records_sent_after(run, after)) >= 400,
        20,
        message="400 requests after the rollback",
    )
    view = await routing(cluster)
    counters_filter = stats_filter(["version-v2", "version-v3"])
    clusters = view.clusters_of("version-v2", "version-v3")
    read_at = time.time()
    before = subset_counters(await cluster.proxy_stats("gateway", counters_filter), clusters)
    await eventually(
        lambda: len(records_sent_after(run, read_at + 0.2)) >= 100,
        20,
        message="more requests after the first stats reading",
    )
    now = subset_counters(await cluster.proxy_stats("gateway", counters_filter), clusters)
    after_records = records_sent_after(run, after)
    assert {(r.version, r.code) for r in after_records} == {("v2", 200)}
    # ... and the gateway agrees: v3's counters stood still while v2's grew
    assert now["version-v3"].total == before["version-v3"].total
    assert now["version-v2"].total > before["version-v2"].total
    assert all(shares.get("version-v2") == 1.0 for shares in view.shares())
    assert result.scaled_down == f"{APP}-v3"


async def test_pause_holds_the_weight_until_promoted(cluster, load) -> None:
    await deploy(cluster, ["v1", "v2"], stable="version-v1")
    run = load(cluster.gateway_url() + "/k8s/demo", QPS)
    ctl = start_progressive(
        cluster, APP, "version-v1", "version-v2", steps=[20, 50, 100], interval_s=1.5, load=run
    )

    async def cell() -> float:
        """What a learner's notebook cells do while the cutover runs in the background."""
        await eventually(lambda: ctl.weight == 20, 30, message="first step")
        ctl.pause()
        paused_at = time.time()
        await eventually(
            lambda: sum(d.action == "hold" for d in ctl.decisions) >= 2,
            30,
            message="two analysis intervals held while paused",
        )
        assert ctl.state == "paused" and ctl.weight == 20
        assert weight_events(cluster, paused_at) == []
        view = await routing(cluster)
        assert view.shares()[-1] == {"version-v1": 0.8, "version-v2": 0.2}
        ctl.promote()
        return paused_at

    paused_at = await cell()
    result = await ctl
    assert result.promoted and result.weight == 100
    actions = [d.action for d in result.decisions]
    assert actions[:2] == ["step", "paused"]
    assert actions[-1] == "promote"
    assert set(actions[2:-1]) == {"hold"}
    assert "promoted by hand" in result.decisions[-1].reason
    changes = [e.data["weights"] for e in weight_events(cluster, paused_at)]
    assert changes == [{"version-v1": 0, "version-v2": 100}]  # 20 % held, then straight to 100
    view = await routing(cluster)
    assert all(shares.get("version-v2") == 1.0 for shares in view.shares())
    assert run.results.non_2xx == 0


async def test_abort_and_cancel_send_everything_back(cluster, load) -> None:
    await deploy(cluster, ["v1", "v2"], stable="version-v1")
    run = load(cluster.gateway_url() + "/k8s/demo", QPS)
    # a cancelled cutover (an interrupted cell) does not leave the traffic split
    ctl = start_progressive(
        cluster, APP, "version-v1", "version-v2", steps=[20, 100], interval_s=30, load=run
    )
    await eventually(lambda: ctl.weight == 20, 30, message="first step")
    ctl.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ctl
    assert ctl.state == "aborted" and ctl.weight == 0
    assert ctl.decisions[-1].action == "rollback" and ctl.decisions[-1].reason == "cancelled"
    view = await routing(cluster)
    assert all(shares.get("version-v1") == 1.0 for shares in view.shares())
    # the abort gate
    ctl = start_progressive(
        cluster, APP, "version-v1", "version-v2", steps=[20, 100], interval_s=30, load=run
    )
    stream = ctl.subscribe()
    await eventually(lambda: ctl.weight == 20, 30, message="first step")
    ctl.abort("the release manager said no")
    result = await ctl
    assert result.outcome == "aborted" and result.weight == 0
    assert result.decisions[-1].action == "rollback"
    assert result.decisions[-1].reason == "the release manager said no"
    assert result.ended - result.started < 20  # did not wait out the 30 s interval
    events = [e async for e in stream]
    assert [e.kind for e in events] == ["Decision", "Decision"]
    assert [e.data["action"] for e in events] == ["step", "rollback"]
    view = await routing(cluster)
    assert all(shares.get("version-v1") == 1.0 for shares in view.shares())
    assert run.results.non_2xx == 0


async def test_bad_input_is_refused_before_any_weight_changes(cluster) -> None:
    await deploy(cluster, [], stable="version-v1")  # routes and subsets; no pods needed
    before = await routing(cluster)
    t0 = time.time()
    # a load source (one synthetic record): the input is refused before anything reads it
    records = [Record(t0, t0, t0 + 0.01, 200, "", "v1", "", 0, 0, 10)]
    base = {"load": records, "interval_s": 1.0}
    cases = [
        ({"steps": [10, 50, 25]}, ConfigError, "steps must increase"),
        ({"steps": [10, 50, 150]}, ConfigError, "150 is over 100"),
        ({"checks": ["request-success-rate", "apdex"]}, ConfigError, "unknown check 'apdex'"),
        ({"canary": "version-v9"}, ManifestError, "subset 'version-v9' is not defined"),
        ({"virtualservice": "no-such-vs"}, ConfigError, "virtualservice/no-such-vs"),
        ({"load": None}, ConfigError, "pass load=start_load"),
    ]
    for override, error, message in cases:
        args = {
            "virtualservice": APP,
            "stable": "version-v1",
            "canary": "version-v2",
            **base,
            **override,
        }
        with pytest.raises(error, match=message):
            await progressive_cutover(cluster, **args)
    # the background form refuses parameters at once, the cluster's facts on await
    with pytest.raises(ConfigError, match="steps must increase"):
        start_progressive(cluster, APP, "version-v1", "version-v2", steps=[50, 10], load=records)
    ctl = start_progressive(cluster, APP, "version-v1", "version-v9", load=records)
    with pytest.raises(ManifestError, match="make before break"):
        await ctl
    assert ctl.state == "refused" and ctl.decisions == []
    after = await routing(cluster)
    assert after.weights == before.weights == ({"version-v1": 100}, {"version-v1": 100})
    assert weight_events(cluster, t0) == []
