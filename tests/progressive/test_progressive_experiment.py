"""The ``progressive`` experiment (``zdlab experiment progressive``): both cutovers, one JSON.

Kept short (two steps, 1.5 s intervals): 200 qps x 1.5 s x 20 % = 60 canary requests per
interval, so the bad build passes the first interval with probability 0.95**60 = 4.6 %
(the test allows that) and is promoted only if it also passes at 100 %, where it gets 300
requests per interval (``pass_probability(300, 0.05, 99)`` = 0.016 %; both: 8e-6).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab_app.experiments import EXPERIMENTS, run_experiment

pytestmark = pytest.mark.timeout(150)


async def test_experiment_promotes_v2_rolls_back_v3_and_reports_decisions(tmp_path) -> None:
    assert "progressive" in EXPERIMENTS
    result = await run_experiment(
        "progressive",
        qps=200,
        interval_s=1.5,
        steps=(20, 100),
        tail_s=1.0,
        cluster_options={"sidecar_injection": False, "propagation_delay": 0.5},
    )
    doc = json.loads(json.dumps(result.to_dict()))
    for key in (
        "scenario",
        "params",
        "requests",
        "codes",
        "non_2xx",
        "per_load",
        "steps",
        "events",
    ):
        assert key in doc
    assert doc["scenario"] == "progressive" and not doc["interrupted"]
    phases = {s["action"]: s for s in doc["steps"] if "outcome" in s}
    promote, rollback = phases["v1->v2"], phases["v2->v3"]
    assert promote["outcome"] == "promoted" and promote["non_2xx"] == 0
    assert set(promote["after_outcome"]) == {"v2"}
    assert promote["scaled_down"] == "zero-downtime-rollingupdate-v1"
    # v3 passes the 20 % interval by luck 4.6 % of the time (see the module doc): then it is
    # caught at 100 %, where 300 requests per interval leave it no chance
    assert rollback["outcome"] == "rolled-back" and rollback["max_weight"] in (20, 100)
    assert set(rollback["after_outcome"]) == {"v2"}  # every answer after the rollback
    assert rollback["non_2xx"] > 0  # the bad build's 500s, before the rollback
    assert set(doc["per_load"]["v2->v3"]["codes"]) <= {"200", "500"}
    actions = [(d["cutover"], d["action"]) for d in doc["decisions"]]
    assert ("v1->v2", "promote") in actions and ("v2->v3", "rollback") in actions
    decisions_in_events = [e for e in doc["events"] if e["kind"] == "Decision"]
    assert len(decisions_in_events) == len(doc["decisions"])
    assert [c["outcome"] for c in doc["cutovers"]] == ["promoted", "rolled-back"]
    path = result.save_json(tmp_path / "progressive.json")
    assert json.loads(path.read_text())["decisions"] == doc["decisions"]


def test_cli_refuses_an_interval_too_short() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab_app.cli", "experiment", "progressive", "--duration", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "interval_s must be at least 1 s, got 0.5 (duration 2 s over 4 steps)" in done.stderr
