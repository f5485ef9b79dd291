"""The backend's watches against a server that compacts its history, as a real one does:
bookmarks keep a quiet watch resumable, and after ``410 Gone`` the backend lists again and
its event stream goes on with nothing lost and nothing repeated."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from test_kube_eventmap import pod

from lab_app.cluster.events import EventKind
from lab_app.cluster.kube import KubeCluster
from tests.helpers import eventually

PODS = "/api/v1/namespaces/zdlab/pods"


def serialize(obj: object) -> dict:
    return k8s.ApiClient().sanitize_for_serialization(obj)


def count(cluster: KubeCluster, kind: str, obj: str) -> int:
    return sum(1 for e in cluster.events() if e.kind == kind and e.obj == obj)


def pod_requests(fake_api, *, watch: bool) -> list:
    return [r for r in fake_api.find("GET", PODS) if ("watch" in r.query) == watch]


@pytest.mark.parametrize("gone_as", ["event", "status"])
async def test_after_410_gone_the_backend_lists_again_and_loses_nothing(
    kubeconfig, store, fake_api, gone_as
):
    store.gone_as = gone_as  # ERROR event in the stream (watch cache) or HTTP 410
    store.put(serialize(pod("web-a", running=True, ready=True)), "pods")
    cluster = await KubeCluster.start(kubeconfig=kubeconfig)
    try:
        store.put(serialize(pod("web-b")), "pods")
        await eventually(lambda: count(cluster, EventKind.POD_CREATED, "pod/web-b"), 10)

        store.hold_watches()  # the connection breaks; the watches' reconnects wait
        store.put(serialize(pod("web-b", running=True, ready=True)), "pods")
        store.delete("pods", "web-a")
        store.compact()  # the server forgets those changes while the backend is away
        compacted = store.resource_version
        store.release_watches()

        def recovered() -> bool:
            return (
                count(cluster, EventKind.POD_DELETED, "pod/web-a") == 1
                and count(cluster, EventKind.POD_READY, "pod/web-b") == 1
            )

        await eventually(recovered, 10, message="the changes made while away are reported")
        watches = pod_requests(fake_api, watch=True)
        assert any(r.query["resourceVersion"] in store.expired for r in watches)  # 410 Gone
        assert len(pod_requests(fake_api, watch=False)) == 2  # so it listed again

        # and watches on from the fresh list: a later change once, no replays
        store.put(serialize(pod("web-b", running=True, ready=True, restarts=1)), "pods")
        store.put(serialize(pod("web-c")), "pods")
        await eventually(lambda: count(cluster, EventKind.POD_CREATED, "pod/web-c"), 10)
        assert count(cluster, EventKind.RESTARTED, "pod/web-b") == 1
        assert int(pod_requests(fake_api, watch=True)[-1].query["resourceVersion"]) >= compacted
        assert count(cluster, EventKind.POD_READY, "pod/web-b") == 1
        assert count(cluster, EventKind.POD_DELETED, "pod/web-a") == 1
        assert count(cluster, EventKind.POD_READY, "pod/web-a") == 0  # ready before the start
        assert count(cluster, EventKind.POD_CREATED, "pod/web-b") == 1
        assert not [e for e in cluster.events() if e.kind == EventKind.NOTE]  # no failure
    finally:
        store.release_watches()
        await cluster.close()


async def test_bookmarks_let_a_quiet_watch_resume_after_compaction(kubeconfig, store, fake_api):
    cluster = await KubeCluster.start(kubeconfig=kubeconfig)
    try:
        for name in ("a", "b", "c"):  # the cluster moves on; nothing the pod watch selects
            store.put(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}, "configmaps"
            )
        latest = store.resource_version

        def bookmarked() -> bool:
            return any(p == "pods" and v >= latest for p, v in store.bookmarks)

        await eventually(bookmarked, 10, message="a bookmark at the latest version")
        store.hold_watches()
        store.compact()  # history before `latest` is gone...
        store.release_watches()
        await eventually(lambda: len(pod_requests(fake_api, watch=True)) >= 2, 10)
        # ...but the pod watch resumes from its bookmark: no 410, no second list
        assert pod_requests(fake_api, watch=True)[-1].query["resourceVersion"] == str(latest)
        assert len(pod_requests(fake_api, watch=False)) == 1
        store.put(serialize(pod("web-d")), "pods")
        await eventually(lambda: count(cluster, EventKind.POD_CREATED, "pod/web-d"), 10)
    finally:
        store.release_watches()
        await cluster.close()
