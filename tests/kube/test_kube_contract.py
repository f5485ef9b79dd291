"""The kubernetes backend's side of the shared contract (``tests/contract/``), in detail:
what it sends and reads against the stateful fake API server, the errors it raises
(``NotFoundError``, ``ConfigError``, ``ManifestError``), ``deployment_status``, pod logs
with ``previous``, and the per-notebook namespace created at connect, deleted at close."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kube_apiserver import FakeApiServer

from lab_app.cluster import connect
from lab_app.cluster.events import EventKind
from lab_app.cluster.kube import KubeCluster
from lab_app.cluster.kube.namespace import OWNER_ANNOTATION
from lab_app.errors import ConfigError, ManifestError, NotFoundError
from tests.helpers import manifest

APP = "zero-downtime-rollingupdate"


async def routes(cluster: KubeCluster) -> None:
    await cluster.apply(manifest("istio/destinationrule.yaml"))
    await cluster.apply(manifest("istio/virtualservice-v1-v2.yaml"))


# --- set_weights -----------------------------------------------------------------------------
async def test_set_weights_event_carries_weights_and_shares(cluster, store):
    await routes(cluster)
    await cluster.set_weights(APP, {"version-v1": 0, "version-v2": 100})
    (event,) = [e for e in cluster.events() if e.kind == EventKind.WEIGHTS_CHANGED]
    assert event.data["weights"] == {"version-v1": 0, "version-v2": 100}
    assert event.data["shares"] == {"version-v1": 0.0, "version-v2": 1.0}
    routed = store.get("virtualservices", APP)["spec"]["http"][-1]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in routed] == [
        ("version-v1", 0),
        ("version-v2", 100),
    ]


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ({"version-v1": 100, "version-v9": 0}, ManifestError, "'version-v9' is not defined"),
        ({"version-v1": 0, "version-v2": 0}, ConfigError, "all weights are 0"),
        ({"version-v1": 101}, ConfigError, "outside 0..100"),
        ({}, ConfigError, "at least one subset"),
    ],
)
async def test_set_weights_refuses_without_patching(cluster, store, weights, error, match):
    await routes(cluster)
    version = store.get("virtualservices", APP)["metadata"]["resourceVersion"]
    with pytest.raises(error, match=match):
        await cluster.set_weights(APP, weights)
    assert store.get("virtualservices", APP)["metadata"]["resourceVersion"] == version
    assert not [e for e in cluster.events() if e.kind == EventKind.WEIGHTS_CHANGED]


# --- missing objects -------------------------------------------------------------------------
# tests/contract: the same NotFoundError on both backends; here the namespace in its message,
# and the methods the contract leaves out.
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.set_weights("nope", {"version-v1": 100}), "virtualservice/nope not found"),
        (lambda c: c.scale("nope", 1), "deployment/nope not found"),
        (lambda c: c.logs("nope"), "pod/nope not found"),
        (lambda c: c.wait_rollout("nope", timeout=5), "deployment/nope not found"),
    ],
    ids=["set_weights", "scale", "logs", "wait_rollout"],
)
async def test_missing_objects_name_the_namespace(cluster, call, match):
    with pytest.raises(NotFoundError, match=f"{match} in namespace 'zdlab'"):
        await call(cluster)


async def test_missing_deployment_status_and_manifest_delete(cluster):
    with pytest.raises(NotFoundError, match="deployment/nope"):
        cluster.deployment_status("nope")
    assert await cluster.delete(manifest("configmap.yaml")) == []  # --ignore-not-found


@pytest.mark.parametrize("replicas", [-1, True, 1.5, "2", None])
async def test_scale_checks_replicas_before_any_request(cluster, fake_api, replicas):
    sent = len(fake_api.requests)
    with pytest.raises(ConfigError, match="replicas must be an integer >= 0"):
        await cluster.scale(APP, replicas)
    assert len(fake_api.requests) == sent


async def test_scale_sets_the_replicas(cluster, store):
    await cluster.apply(manifest("deployment.yaml"))
    await cluster.scale(APP, 0)
    assert store.get("deployments", APP)["spec"]["replicas"] == 0


# --- deployment_status -----------------------------------------------------------------------
def controller_state(store, *, available_new: int) -> None:
    """Play the Deployment controller: revision 2, one old and one new ReplicaSet."""
    dep = store.get("deployments", APP)
    dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "2"
    dep = store.put(dep, "deployments")
    labels = dep["spec"]["selector"]["matchLabels"]
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP,
             "uid": dep["metadata"]["uid"], "controller": True}  # fmt: skip
    for revision, available in (("1", 1), ("2", available_new)):
        store.put(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{APP}-r{revision}",
                    "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": revision},
                    "ownerReferences": [owner],
                },
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}},
                "status": {"replicas": 1, "availableReplicas": available},
            },
            "replicasets",
        )
    generation = store.get("deployments", APP)["metadata"]["generation"]
    store.write_status(
        "deployments",
        APP,
        {
            "observedGeneration": generation,
            "replicas": 3,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    )


async def test_deployment_status_has_the_embedded_keys(cluster, store):
    await cluster.apply(manifest("deployment.yaml"))
    desired = manifest("deployment.yaml")["spec"]["replicas"]
    controller_state(store, available_new=1)
    status = cluster.deployment_status(APP)
    assert status == {
        "replicas": desired,
        "current": 3,
        "updated": 2,
        "ready": 2,
        "available": 2,
        "updated_available": 1,
        "terminating": 0,
        "revision": 2,
        "complete": False,
    }


# --- logs ------------------------------------------------------------------------------------
def put_pod(store, name: str, *, restarted: bool) -> None:
    last: dict[str, Any] = {}
    if restarted:
        last = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                               "containerID": "containerd://abc"}}  # fmt: skip
    store.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": APP}},
            "spec": {
                "containers": [
                    {"name": "demo", "image": "zdlab/demo:v1"},
                    {"name": "istio-proxy", "image": "istio/proxyv2"},
                ]
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "demo",
                        "ready": True,
                        "restartCount": int(restarted),
                        "image": "zdlab/demo:v1",
                        "imageID": "",
                        "lastState": last,
                    },
                ],
            },
        },
        "pods",
    )


async def test_logs_current_tail_and_previous(cluster, store, fake_api: FakeApiServer):
    put_pod(store, "web-1", restarted=True)
    store.set_log("web-1", "a\nb\nc\n", container="demo", previous="before the kill\n")
    assert await cluster.logs("web-1") == "a\nb\nc\n"
    assert await cluster.logs("pod/web-1", tail=2) == "b\nc\n"
    assert await cluster.logs("web-1", previous=True) == "before the kill\n"
    query = fake_api.find("GET", "/api/v1/namespaces/zdlab/pods/web-1/log")[-1].query
    assert query == {"container": "demo", "previous": "true"}


async def test_logs_previous_before_any_restart_is_a_config_error(cluster, store):
    put_pod(store, "web-2", restarted=False)
    store.set_log("web-2", "ready\n")
    with pytest.raises(ConfigError, match=r"^pod/web-2 has no previous container \(no restart"):
        await cluster.logs("web-2", previous=True)
    assert await cluster.logs("web-2") == "ready\n"


async def test_fake_server_answers_log_errors_like_the_kubelet(cluster, store):
    put_pod(store, "web-3", restarted=False)
    core = cluster.clients.core
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("web-3", "zdlab")
    assert info.value.status == 400
    assert "a container name must be specified for pod web-3" in info.value.body
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod_log("web-3", "zdlab", container="demo", previous=True)
    assert 'previous terminated container \\"demo\\" in pod \\"web-3\\" not found' in (
        info.value.body
    )


# --- note ------------------------------------------------------------------------------------
async def test_note_publishes_a_note_event(cluster):
    before = time.time()
    event = cluster.note("load started", step=1)
    assert (event.kind, event.obj, event.data) == (EventKind.NOTE, "lab", {"step": 1})
    assert cluster.events(since=before) == [event]


# --- the per-notebook namespace --------------------------------------------------------------
async def test_a_notebook_namespace_is_created_labelled_and_deleted_at_close(kubeconfig, store):
    cluster = await connect("kubernetes", kubeconfig=kubeconfig, namespace="zdlab-05", watch=False)
    assert cluster.namespace == "zdlab-05"
    created = store.get("namespaces", "zdlab-05", namespace="")
    labels = created["metadata"]["labels"]
    assert labels == manifest("namespace.yaml")["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    await cluster.apply(manifest("configmap.yaml"))
    assert store.get("configmaps", "cluster", namespace="zdlab-05") is not None
    await cluster.close()
    assert store.get("namespaces", "zdlab-05", namespace="") is None
    assert store.get("configmaps", "cluster", namespace="zdlab-05") is None
    assert store.get("namespaces", "zdlab", namespace="") is not None  # not the lab's: kept


async def test_keep_namespace_keeps_it_and_says_so(kubeconfig, store):
    cluster = await KubeCluster.start(
        kubeconfig=kubeconfig, namespace="zdlab-06", watch=False, keep_namespace=True
    )
    await cluster.close()
    assert store.get("namespaces", "zdlab-06", namespace="") is not None
    (note,) = [e for e in cluster.events() if e.kind == EventKind.NOTE]
    assert note.obj == "namespace/zdlab-06" and "kept (keep_namespace=True)" in note.message
    # a later connect owns it too (left by the lab), so its close deletes it
    again = await KubeCluster.start(kubeconfig=kubeconfig, namespace="zdlab-06", watch=False)
    await again.close()
    assert store.get("namespaces", "zdlab-06", namespace="") is None


async def test_a_namespace_the_lab_did_not_create_is_never_deleted(kubeconfig, store):
    store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}, "namespaces")
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, namespace="team", watch=False)
    await cluster.close()
    assert store.get("namespaces", "team", namespace="") is not None


async def test_namespace_manifest_is_applied_as_the_lab_namespace(kubeconfig, store):
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, namespace="zdlab-07", watch=False)
    try:
        zdlab = store.get("namespaces", "zdlab", namespace="")
        assert await cluster.apply(manifest("namespace.yaml")) == ["namespace/zdlab-07"]
        assert store.get("namespaces", "zdlab", namespace="") == zdlab  # untouched
        applied = store.get("namespaces", "zdlab-07", namespace="")
        # the owner mark (another field manager) survives the manifest's apply
        assert applied["metadata"]["annotations"][OWNER_ANNOTATION] == "connect"
    finally:
        await cluster.close()
    assert store.get("namespaces", "zdlab-07", namespace="") is None


async def test_default_namespace_is_zdlab(cluster):
    assert cluster.namespace == "zdlab"
