"""Pure tests of the check logic: windows, metrics, thresholds, parameters, gates.

Synthetic records and a synthetic ``LoadResults`` (built from a ``RequestLog`` the way a load
run builds its own) stand in for traffic; nothing here starts a process.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from lab_app.errors import ConfigError, LabError, ManifestError
from lab_app.load import LoadResults, Record, RequestLog, make_options
from lab_app.progressive import (
    Check,
    Gate,
    Window,
    build_steps,
    evaluate,
    is_failure,
    make_spec,
    parse_checks,
    pass_probability,
    percentile,
    summarize,
    window_records,
)
from lab_app.progressive.analysis import (
    SubsetCounters,
    load_scopes,
    stats_filter,
    subset_counters,
)
from lab_app.progressive.routing import require_subsets, routing_from_rows

T0 = 1_700_000_000.0
V2 = "outbound|8080|version-v2|zero-downtime-rollingupdate.zdlab.svc.cluster.local"
V3 = "outbound|8080|version-v3|zero-downtime-rollingupdate.zdlab.svc.cluster.local"


def rec(sent: float, code: int = 200, version: str = "v2", latency: float = 0.01) -> Record:
    return Record(sent, sent, sent + latency, code, "", version, "", 0, 0, 10)


def window_of(records: list[Record], weight: int = 10, **gateway: SubsetCounters) -> Window:
    return Window(
        T0,
        T0 + 3,
        weight,
        load=load_scopes(records, stable_version="v2", canary_version="v3"),
        gateway=dict(gateway),
    )


def synthetic_results(rows: list[tuple[float, float, int, str]]) -> LoadResults:
    """A LoadResults from (sent offset, latency, code, version) rows, as a run builds it."""
    log = RequestLog(T0)
    for sent, latency, code, version in sorted(rows, key=lambda r: r[0] + r[1]):
        err = 1 if code == -1 else 0
        log.append(
            sent, sent, sent + latency, code, err, log.intern_version(version), 0, 0, 0, 0, 0
        )
    options = make_options("http://127.0.0.1:1/k8s/demo", qps=100, duration=10)
    return LoadResults.from_log(
        log, options, actual_duration=10, sockets=[1], loop_lag={}, done=True
    )


# ---------------------------------------------------------------------------- metrics


def test_failures_are_5xx_and_transport_errors_not_4xx() -> None:
    assert [is_failure(c) for c in (200, 404, 409, 500, 503, 599, -1)] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 99))


def test_summarize_scopes_by_version_header() -> None:
    records = [rec(T0 + i * 0.01, 200, "v2") for i in range(90)]
    records += [rec(T0 + i * 0.01, 500 if i < 3 else 200, "v3") for i in range(10)]
    records.append(rec(T0, -1, ""))  # a transport error: no version, counts in "all" only
    canary = summarize(records, scope="canary", version="v3")
    assert (canary.requests, canary.failures) == (10, 3)
    assert canary.success_rate == pytest.approx(70.0)
    everything = summarize(records, scope="all")
    assert (everything.requests, everything.failures) == (101, 4)
    assert everything.codes == {200: 97, 500: 3, -1: 1}
    with pytest.raises(ConfigError, match="needs the version"):
        summarize(records, scope="canary")


def test_p99_of_a_window_in_milliseconds() -> None:
    records = [rec(T0, latency=0.010) for _ in range(99)] + [rec(T0, latency=0.900)]
    numbers = summarize(records, scope="all")
    assert numbers.p99_ms == pytest.approx(10.0)  # nearest rank: the 99th of 100
    records.append(rec(T0, latency=0.800))
    assert summarize(records, scope="all").p99_ms == pytest.approx(800.0)


def test_window_keeps_requests_sent_in_it_and_completed_before_its_end() -> None:
    results = synthetic_results(
        [
            (0.5, 0.01, 200, "v2"),  # sent before the window
            (1.0, 0.01, 200, "v2"),  # first in
            (2.0, 0.01, 500, "v3"),  # in
            (3.5, 1.0, 200, "v3"),  # sent in, completes after the end: not judged
            (4.0, 0.5, 200, "v2"),  # sent at the end: next window
        ]
    )
    inside = window_records([results], T0 + 1.0, T0 + 4.0)
    assert [(round(r.sent - T0, 2), r.code) for r in inside] == [(1.0, 200), (2.0, 500)]
    # a plain list of Records is read the same way
    as_list = list(results.records.records())
    assert window_records([as_list], T0 + 1.0, T0 + 4.0) == inside
    # two sources are merged
    assert len(window_records([results, as_list], T0, T0 + 10)) == 10


# ---------------------------------------------------------------------------- checks


def test_a_five_percent_canary_fails_the_success_rate_check() -> None:
    records = [rec(T0, 500 if i % 20 == 0 else 200, "v3") for i in range(200)]
    records += [rec(T0, 200, "v2") for _ in range(1800)]
    checks = parse_checks(["request-success-rate", "request-duration"])
    results = evaluate(checks, window_of(records))
    assert [r.passed for r in results] == [False, True]
    assert results[0].value == pytest.approx(95.0)
    assert results[0].samples == 200
    assert "95.00 %" in results[0].reason and ">= 99 %" in results[0].reason
    # the same errors measured over all the traffic would hide it: 0.5 % < 1 %
    all_scope = parse_checks([{"name": "request-success-rate", "scope": "all"}])
    assert evaluate(all_scope, window_of(records))[0].passed


def test_a_healthy_canary_passes() -> None:
    records = [rec(T0, 200, "v3") for _ in range(60)] + [rec(T0, 404, "v3")]
    results = evaluate(
        parse_checks(["request-success-rate", "request-duration"]), window_of(records)
    )
    assert all(r.passed for r in results), [str(r) for r in results]


def test_too_few_canary_requests_fail_the_check() -> None:
    records = [rec(T0, 200, "v3") for _ in range(5)] + [rec(T0, 200, "v2") for _ in range(500)]
    result = evaluate(parse_checks(["request-success-rate"]), window_of(records))[0]
    assert not result.passed
    assert "5 canary requests" in result.reason and "fewer than 20" in result.reason


def test_latency_check_uses_the_canary_p99() -> None:
    slow = [rec(T0, 200, "v3", latency=0.8) for _ in range(30)]
    fast = [rec(T0, 200, "v2", latency=0.005) for _ in range(300)]
    result = evaluate(parse_checks(["request-duration"]), window_of(slow + fast))[0]
    assert not result.passed and result.value == pytest.approx(800.0)
    custom = parse_checks([{"name": "request-duration", "thresholdRange": {"max": 1000}}])
    assert evaluate(custom, window_of(slow + fast))[0].passed


def test_gateway_check_reads_the_canary_subset_counters() -> None:
    check = parse_checks(["gateway-success-rate"])
    bad = SubsetCounters("version-v3", total=100, completed=100, errors_5xx=5, found=True)
    assert not evaluate(check, window_of([], canary=bad))[0].passed
    good = SubsetCounters("version-v3", total=100, completed=100, errors_5xx=0, found=True)
    assert evaluate(check, window_of([], canary=good))[0].passed
    missing = evaluate(check, window_of([]))[0]
    assert not missing.passed and "no counters" in missing.reason


def test_subset_counters_sum_exact_stat_names_and_subtract() -> None:
    stats = {
        f"cluster.{V3}.upstream_rq_total": 120,
        f"cluster.{V3}.upstream_rq_completed": 118,
        f"cluster.{V3}.upstream_rq_active": 2,
        f"cluster.{V3}.upstream_rq_5xx": 6,
        f"cluster.{V3}.external.upstream_rq_5xx": 6,  # a variant: must not double count
        f"cluster.{V2}.upstream_rq_total": 1000,
        f"cluster.{V2}.upstream_rq_completed": 1000,
    }
    after = subset_counters(stats, {"version-v3": [V3], "version-v2": [V2], "version-v9": []})
    assert after["version-v3"] == SubsetCounters("version-v3", 120, 118, 2, 6, True)
    assert after["version-v2"].errors_5xx == 0 and after["version-v2"].found
    assert not after["version-v9"].found
    before = SubsetCounters("version-v3", 20, 18, 0, 1, True)
    delta = after["version-v3"].minus(before)
    assert (delta.total, delta.completed, delta.errors_5xx) == (100, 100, 5)
    assert delta.success_rate == pytest.approx(95.0)
    assert stats_filter(["version-v3", "version-v2"]).startswith(
        r"^cluster\.outbound\|[0-9]+\|(version\-v2|version\-v3)\|"
    )


# ---------------------------------------------------------------------------- statistics


def test_pass_probability_explains_the_window_size() -> None:
    # 0 errors allowed below 100 requests at 99 %: a 5 % build passes with 0.95**n
    assert pass_probability(20, 0.05, 99) == pytest.approx(0.95**20)
    assert pass_probability(60, 0.05, 99) == pytest.approx(0.95**60)
    # 1 error allowed from 100 requests on
    p120 = pass_probability(120, 0.05, 99)
    assert p120 == pytest.approx(0.95**120 + 120 * 0.05 * 0.95**119)
    assert p120 < 0.02
    assert pass_probability(200, 0.05, 99) < 0.003
    assert pass_probability(60, 0.0, 99) == pytest.approx(1.0)  # a good build always passes


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([10, 5, 100], r"steps must increase: steps\[1\] = 5 follows 10"),
        ([10, 10], r"steps must increase"),
        ([10, 50, 120], r"steps\[2\] = 120 is over 100"),
        ([0, 50], r"steps\[0\] = 0"),
        ([10, True], r"steps\[1\] must be an integer"),
        ([10.5, 50], r"steps\[0\] must be an integer"),
        ([], "steps is empty"),
        ("10,50", "steps must be a list"),
    ],
)
def test_bad_steps_are_refused(steps: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_steps(steps, None, None)  # type: ignore[arg-type]


def test_flagger_step_weight_and_max_weight() -> None:
    assert build_steps(None, 20, 50) == (20, 40, 50)
    assert build_steps(None, 25, None) == (25, 50, 75, 100)
    assert build_steps(None, None, None) == (10, 25, 50, 100)
    with pytest.raises(ConfigError, match="not both"):
        build_steps([10, 100], 10, None)
    with pytest.raises(ConfigError, match="above max_weight"):
        build_steps(None, 60, 50)
    with pytest.raises(ConfigError, match="max_weight = 150 is over 100"):
        build_steps(None, 10, 150)


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (["request-success-rate", "error-budget"], r"unknown check 'error-budget' \(known: "),
        ([], "at least one"),
        (["request-duration", "request-duration"], "given twice"),
        ([{"name": "request-success-rate", "thresholdRange": {"min": 150}}], "0..100"),
        ([{"name": "request-success-rate", "threshold": 99}], r"unknown field\(s\) threshold"),
        ([{"name": "request-duration", "interval": "1m"}], "interval_s"),
        ([{"thresholdRange": {"min": 99}}], "has no name"),
        ([{"name": "request-duration", "minRequests": 0}], "min_requests"),
        ([{"name": "gateway-success-rate", "scope": "all"}], "canary subset only"),
        ([42], "a check is a name"),
    ],
)
def test_bad_checks_are_refused(checks: list[object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_checks(checks)  # type: ignore[arg-type]


def test_flagger_shaped_check() -> None:
    (check,) = parse_checks(
        [{"name": "request-success-rate", "thresholdRange": {"min": 95}, "minRequests": 10}]
    )
    assert (check.min, check.max, check.min_requests, check.source) == (95, None, 10, "load")
    with pytest.raises(ConfigError, match="no latency"):
        Check("x", source="gateway", metric="p99_ms", max=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary": "version-v1"}, "both 'version-v1'"),
        ({"threshold": 0}, "threshold"),
        ({"interval_s": 0}, "interval_s must be > 0"),
        ({"canary": ""}, "canary"),
        ({"scale_down": ""}, "scale_down"),
    ],
)
def test_bad_spec_is_refused(kwargs: dict[str, object], message: str) -> None:
    args = {"virtualservice": "vs", "stable": "version-v1", "canary": "version-v2", **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_spec(**args)  # type: ignore[arg-type]


def test_spec_defaults_follow_the_subset_names() -> None:
    spec = make_spec("vs", "version-v2", "version-v3")
    assert (spec.stable_version, spec.canary_version) == ("v2", "v3")
    assert spec.steps == (10, 25, 50, 100) and spec.threshold == 2
    assert spec.needs_load and spec.needs_gateway


# ---------------------------------------------------------------------------- routing view


def test_routing_from_gateway_rows_and_missing_subset() -> None:
    routes = [
        {"VIRTUAL SERVICE": "zero-downtime-rollingupdate.zdlab", "weights": {V2: 90, V3: 10}},
        {"VIRTUAL SERVICE": "other.zdlab", "weights": {"outbound|80|a|other": 100}},
    ]
    clusters = [{"name": V2}, {"name": V3}, {"name": "outbound|80|a|other"}, {"name": "xds"}]
    r = routing_from_rows("zero-downtime-rollingupdate", routes, clusters)
    assert r.subsets == {"version-v2": (V2,), "version-v3": (V3,)}
    assert r.routed() == {"version-v2", "version-v3"}
    assert r.shares() == [{"version-v2": 0.9, "version-v3": 0.1}]
    with pytest.raises(ManifestError, match="subset 'version-v9' is not defined") as err:
        require_subsets(r, "version-v2", "version-v9")
    assert err.value.field == "spec.subsets"
    with pytest.raises(ConfigError, match="virtualservice/nope"):
        routing_from_rows("nope", routes, clusters)


# ---------------------------------------------------------------------------- gates


async def test_gate_pause_resume_promote() -> None:
    gate = Gate()
    seen: list[tuple[str, str]] = []
    gate.on_change(lambda action, reason: seen.append((action, reason)))
    gate.pause()
    gate.pause()  # already paused: no second notice
    gate.resume("go on")
    assert seen == [("paused", "paused by hand"), ("resumed", "go on")]
    start = time.monotonic()
    asyncio.get_running_loop().call_later(0.05, gate.promote)
    assert await gate.wait(30) == "promote"
    assert time.monotonic() - start < 10  # woken by promote, not by the timeout
    with pytest.raises(LabError, match="promote was already requested"):
        gate.abort()
    gate.finish("promoted")
    with pytest.raises(LabError, match="the cutover is over"):
        gate.pause()
