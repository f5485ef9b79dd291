"""Fixtures for the kubernetes backend's tests: a canned-JSON API server on 127.0.0.1,
optionally backed by a stateful object store that behaves like kube-apiserver."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kube_apiserver import FakeApiServer, kubeconfig_text
from kube_store import ObjectStore

from lab_app.cluster.kube import KubeCluster


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.on("GET", "/version/", {"major": "1", "minor": "33", "gitVersion": "v1.33.1"})
    server.on(
        "GET",
        "/api/v1/namespaces/zdlab",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zdlab"}},
    )
    yield server
    server.close()


@pytest.fixture
def kubeconfig(tmp_path: Path, fake_api: FakeApiServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(fake_api.url))
    return path


@pytest.fixture
def store(fake_api: FakeApiServer) -> ObjectStore:
    """The fake server answering like kube-apiserver for every path not canned, with the
    lab's namespace in it. Bookmarks come every 0.2 s so tests see them without waiting."""
    objects = ObjectStore(bookmark_interval=0.2)
    objects.put(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zdlab"}}, "namespaces"
    )
    fake_api.store = objects
    return objects


@pytest.fixture
async def cluster(kubeconfig: Path, store: ObjectStore) -> AsyncIterator[KubeCluster]:
    """A ``KubeCluster`` on the stateful fake API server, without watches."""
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False)
    yield cluster
    await cluster.close()
