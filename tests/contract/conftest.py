"""One cluster fixture, two backends: the contract is checked on both with the same test.

``embedded``: a real ``EmbeddedCluster`` (processes, Envoy). ``kubernetes``: ``KubeCluster``
through the real ``kubernetes`` client against the fake API server of ``tests/kube/``, backed
by its stateful ``ObjectStore`` (server-side apply, resourceVersion, 404/409 as the real
kube-apiserver answers them). No test here skips for want of a cluster.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

KUBE_TESTS = Path(__file__).resolve().parent.parent / "kube"
sys.path.insert(0, str(KUBE_TESTS))

from kube_apiserver import FakeApiServer, kubeconfig_text  # noqa: E402
from kube_store import ObjectStore  # noqa: E402

from lab_app.cluster.embedded import EmbeddedCluster  # noqa: E402
from lab_app.cluster.kube.cluster import KubeCluster  # noqa: E402
from tests.helpers import alive, eventually  # noqa: E402


@pytest.fixture
def fake_api() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer()
    server.on("GET", "/version/", {"major": "1", "minor": "34", "gitVersion": "v1.34.0"})
    store = ObjectStore(bookmark_interval=0.2)
    store.put(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zdlab"}}, "namespaces"
    )
    server.store = store
    yield server  # type: ignore[misc]
    server.close()


@pytest.fixture(params=["embedded", "kubernetes"])
async def cluster(request: Any, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "embedded":
        c: Any = await EmbeddedCluster.start(sidecar_injection=False, propagation_delay=0.2)
        pids = set(c.processes().values())
        try:
            yield c
        finally:
            await c.close()
            await eventually(lambda: not alive(pids), 10, message="every lab process gone")
        return
    server = request.getfixturevalue("fake_api")
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text(server.url))
    c = await KubeCluster.start(kubeconfig=config, watch=False)
    try:
        yield c
    finally:
        await c.close()
