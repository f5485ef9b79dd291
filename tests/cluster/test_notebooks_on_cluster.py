"""Notebooks 02 to 08, in order, on a real cluster: what ``make test-cluster`` runs.

Each notebook runs through ``scripts/run_notebooks.py``'s ``run_one`` (papermill, the same
settings as ``make lab``) with ``BACKEND = "kubernetes"``; its ``assert`` cells are the
verdict. Executed notebooks, figures and results go to ``out/cluster/`` (08 compares the
results 03-07 saved in this run). ``make test-cluster`` checks the cluster first
(lab_app/cluster/kube/reach.py); run directly, the tests skip with that check's line.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from lab_app.cluster.kube.reach import check
from lab_app.paths import REPO_ROOT as REPO

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

NOTEBOOKS = ["02", "03", "04", "05", "06", "07", "08"]
OUT = REPO / "out" / "cluster"


def _runner():
    script = REPO / "scripts" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cluster_run():
    verdict = check()
    if not verdict.ok:
        pytest.skip(verdict.line())
    saved = {k: os.environ.get(k) for k in ("ZDLAB_BACKEND", "ZDLAB_LIVE", "ZDLAB_OUT")}
    os.environ.update(ZDLAB_BACKEND="kubernetes", ZDLAB_LIVE="0", ZDLAB_OUT=str(OUT))
    (OUT / "figures").mkdir(parents=True, exist_ok=True)
    for stale in (OUT / "results").glob("*.json"):
        stale.unlink()
    runner = _runner()
    outcomes: list = []
    yield runner, outcomes
    runner.write_index(OUT, outcomes, {"BACKEND": "kubernetes"})
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.parametrize("number", NOTEBOOKS)
def test_notebook_on_the_cluster(number: str, cluster_run) -> None:
    runner, outcomes = cluster_run
    (path,) = sorted((REPO / "notebooks").glob(f"{number}_*.ipynb"))
    outcome = runner.run_one(path, OUT, {"BACKEND": "kubernetes"}, timeout=900)
    outcomes.append(outcome)
    assert outcome.ok, f"{path.name}: {outcome.error} (executed notebook: {outcome.output})"
