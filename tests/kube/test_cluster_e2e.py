"""End to end on a real cluster: notebooks 02, 03 and 05 with ``BACKEND = "kubernetes"``.

Run with ``make test-cluster`` after ``scripts/cluster-up.sh`` (docs/real-cluster.md). Skipped,
with the reason, when no cluster answers within 2 s, when the current context is not a
local kind/minikube cluster (the notebooks create and delete things in namespace
``zdlab``; set ``ZDLAB_E2E_ANY_CONTEXT=1`` to allow another cluster), or when a notebook
is not there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab_app.cluster.kube.client import load_configuration, probe
from lab_app.errors import LabError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = [
    "02_deploy_and_explore.ipynb",
    "03_plain_rolling_update.ipynb",
    "05_istio_subset_cutover.ipynb",
]


@pytest.fixture(scope="module")
def live_cluster() -> str:
    try:
        configuration, info = load_configuration()
        version = probe(configuration, info, timeout=2.0)
    except LabError as exc:
        pytest.skip(f"no reachable Kubernetes cluster: {exc}")
    if info.flavour not in ("kind", "minikube") and not os.environ.get("ZDLAB_E2E_ANY_CONTEXT"):
        pytest.skip(
            f"context {info.name!r} is not a local kind/minikube cluster; "
            "set ZDLAB_E2E_ANY_CONTEXT=1 to run the notebooks against it anyway"
        )
    return f"{info.name} ({version})"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_cluster(name: str, live_cluster: str, tmp_path: Path) -> None:
    notebook = NOTEBOOKS / name
    if not notebook.is_file():
        pytest.skip(f"notebooks/{name} is not written yet")
    import papermill

    output = tmp_path / name
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters={"BACKEND": "kubernetes"},
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        kernel_name="python3",
    )
    assert output.is_file()
