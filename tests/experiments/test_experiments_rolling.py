"""The rolling-update experiments reproduce the mechanisms, measured under real load.

Short runs (8-12 s of load) keep the suite fast; the counts are printed for the report.
"""

from __future__ import annotations

from lab_app import claims
from lab_app.experiments import (
    run_hardened_rolling_update,
    run_naive_rolling_update,
)


def _report(result) -> None:
    print(result.verdict(), result.extra or "")


def _errors_from_rollout(result) -> claims.RolloutErrors:
    """Every error lies in [set_image, rollout complete + propagation + timeout], none before."""
    t = {s["action"]: s["t"] for s in result.steps}
    load = result.load("demo")
    return claims.check_errors_from_rollout(
        load.records.records(),
        rollout_start=t["set_image"],
        rollout_end=t["rollout complete"],
        propagation_s=1.0,  # the embedded backend's default propagation_delay
        timeout_s=load.timeout,
        name=result.scenario,
    )


async def test_naive_rolling_update_drops_connections_without_istio() -> None:
    result = await run_naive_rolling_update(qps=100, duration=8)
    _report(result)
    assert result.requests >= 700
    assert _errors_from_rollout(result).inside == result.non_2xx > 0
    # no proxy in front: the clients see refused/reset connections (fortio's -1), not 503s
    assert set(result.codes) <= {200, -1} and result.codes.get(-1, 0) == result.non_2xx
    assert {"v1", "v2"} <= set(result.by_version)
    data = result.to_dict()
    assert data["scenario"] == "naive-rolling-update" and data["non_2xx"] == result.non_2xx
    assert data["codes"]["-1"] == result.non_2xx and data["events"] and data["loads"]["demo"]


async def test_naive_rolling_update_through_the_gateway_answers_503_uf() -> None:
    result = await run_naive_rolling_update(qps=100, duration=8, via="gateway")
    _report(result)
    assert result.codes.get(503, 0) > 0
    assert _errors_from_rollout(result).inside == result.non_2xx
    assert any("UF" in flags for flags in result.by_flags), result.by_flags


async def test_hardened_rolling_update_drops_nothing() -> None:
    result = await run_hardened_rolling_update(qps=100, duration=12)
    _report(result)
    assert result.requests >= 1100
    claims.check_zero_errors(result.load("demo"), name="hardened rolling update")
    assert result.by_version.get("v2", 0) > 0 and result.by_version.get("v1", 0) > 0
    kinds = [e.kind for e in result.events]
    # the old pods were stopped during the run: preStop, then SIGTERM, graceful exit
    assert kinds.count("PreStopStarted") == 2 and kinds.count("SIGTERM") == 2
    assert "SIGKILL" not in kinds
