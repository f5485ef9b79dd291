"""Notebook 02's own cells, with ``ZDLAB_BACKEND=kubernetes``, against the fake API server.

No cluster runs here, so this is as close as the lab gets to running a notebook on kind: the
cells that open the cluster and apply the manifests are taken from
``notebooks/02_deploy_and_explore.ipynb`` as written, executed with the kubernetes backend
chosen the way a learner chooses it (the environment variable), and what reaches the API
server is checked: the notebook's namespace created with its labels, then one server-side
apply (``fieldManager=zdlab``) per object, through the real ``kubernetes`` client.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from kube_apiserver import FakeApiServer, kubeconfig_text
from kube_store import ObjectStore

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "02_deploy_and_explore.ipynb"


def _cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _apply_lines(cell: str) -> str:
    """The cell up to its first line that waits or talks to the pods (the apply loop)."""
    kept = []
    for line in cell.splitlines():
        if any(word in line for word in ("wait_rollout", "config_settled", "gateway_url")):
            break
        kept.append(line)
    return "\n".join(kept)


async def _run(source: str, scope: dict[str, Any]) -> None:
    code = compile(source, str(NOTEBOOK), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, scope)
    if result is not None:
        await result


async def test_notebook_02_applies_through_the_kubernetes_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer()
    server.on("GET", "/version/", {"major": "1", "minor": "34", "gitVersion": "v1.34.0"})
    server.store = ObjectStore()
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text(server.url))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setenv("ZDLAB_BACKEND", "kubernetes")
    code = _cells()
    parameters, opening = code[0], code[1]
    applies = [_apply_lines(c) for c in code if "cluster.apply(" in c]
    assert "BACKEND" in parameters and "open_cluster" in opening and len(applies) == 2
    scope: dict[str, Any] = {"__name__": "__main__"}
    try:
        for source in (parameters, opening, *applies):
            await _run(source, scope)
        cluster = scope["cluster"]
        assert cluster.backend == "kubernetes" and cluster.namespace == "zdlab-02"
        namespace = server.store.get("namespaces", "zdlab-02", namespace="")
        assert namespace is not None
        labels = namespace["metadata"]["labels"]
        assert labels["istio-injection"] == "enabled"
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        applied = [
            r.path.rsplit("/", 2)[-2:]
            for r in server.requests
            if r.method == "PATCH"
            and r.query.get("fieldManager") == "zdlab"
            and "apply-patch"
            in {k.lower(): v for k, v in r.headers.items()}.get("content-type", "")
            and "/namespaces/zdlab-02/" in r.path
        ]
        assert applied == [
            ["configmaps", "cluster"],
            ["services", "zero-downtime-rollingupdate"],
            ["deployments", "zero-downtime-rollingupdate"],
            ["gateways", "demo-gateway"],
            ["destinationrules", "zero-downtime-rollingupdate"],
            ["virtualservices", "zero-downtime-rollingupdate"],
        ], applied
        assert scope["applied"] == [
            "configmap/cluster",
            "service/zero-downtime-rollingupdate",
            "deployment/zero-downtime-rollingupdate",
        ]
    finally:
        if "cluster" in scope:
            await scope["cluster"].close()
        server.close()
