"""KubeCluster against the stateful fake API server: server-side apply with field managers
and conflicts, optimistic concurrency on set_weights, and rollouts gated on generation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lab_app.cluster.kube.rollout import wait_for_rollout
from lab_app.errors import LabError
from tests.helpers import eventually, manifest

APP = "zero-downtime-rollingupdate"
MERGE = "application/merge-patch+json"


def managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(m["manager"], m["operation"]): m["fieldsV1"] for m in obj["metadata"]["managedFields"]}


async def test_apply_creates_and_reapplying_writes_nothing(cluster, store):
    assert await cluster.apply(manifest("deployment.yaml")) == [f"deployment/{APP}"]
    created = store.get("deployments", APP)
    assert managers(created).keys() == {("zdlab", "Apply")}
    await cluster.apply(manifest("deployment.yaml"))
    again = store.get("deployments", APP)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_a_field_someone_else_edited_conflicts_unless_forced(cluster, store):
    deployment = manifest("deployment.yaml")
    await cluster.apply(deployment)
    await asyncio.to_thread(  # kubectl edit / kubectl scale by a person
        cluster.clients.apps.patch_namespaced_deployment,
        APP,
        "zdlab",
        {"spec": {"replicas": 5}},
        field_manager="kubectl-edit",
        _content_type=MERGE,
    )
    with pytest.raises(LabError) as caught:
        await cluster.apply(deployment, force=False)
    message = str(caught.value)
    assert message.startswith("apply <dict>#0: HTTP 409 conflict: another field manager set")
    assert ".spec.replicas (owned by 'kubectl-edit' (update))" in message
    assert "force=True" in message
    assert store.get("deployments", APP)["spec"]["replicas"] == 5  # refused: unchanged
    await cluster.apply(deployment)  # the lab's default: --force-conflicts
    won = store.get("deployments", APP)
    assert won["spec"]["replicas"] == deployment["spec"]["replicas"]
    assert ("kubectl-edit", "Update") not in managers(won)
    assert "f:replicas" in managers(won)[("zdlab", "Apply")]["f:spec"]


async def test_weights_set_by_the_lab_are_taken_back_by_a_forced_apply(cluster, store):
    await cluster.apply(
        [manifest("istio/destinationrule.yaml"), manifest("istio/virtualservice-v1-v2.yaml")]
    )
    await cluster.set_weights(APP, {"version-v1": 0, "version-v2": 100})
    vs = store.get("virtualservices", APP)
    assert ("zdlab", "Update") in managers(vs)  # a merge patch: the same name, another manager
    # upstream identifies a manager by name *and* operation: the lab's own patch conflicts
    with pytest.raises(LabError, match=r"owned by 'zdlab' \(update\)"):
        await cluster.apply(manifest("istio/virtualservice-v1-v2.yaml"), force=False)
    await cluster.apply(manifest("istio/virtualservice-v1-v2.yaml"))
    routes = store.get("virtualservices", APP)["spec"]["http"][-1]["route"]
    wanted = manifest("istio/virtualservice-v1-v2.yaml")["spec"]["http"][-1]["route"]
    assert [r.get("weight") for r in routes] == [r.get("weight") for r in wanted]


async def test_set_weights_on_a_stale_read_is_refused(cluster, store, fake_api):
    await cluster.apply(
        [manifest("istio/destinationrule.yaml"), manifest("istio/virtualservice-v1-v2.yaml")]
    )
    path = f"/apis/networking.istio.io/v1/namespaces/zdlab/virtualservices/{APP}"
    fake_api.on("GET", path, store.get("virtualservices", APP))  # what set_weights reads...
    changed = store.get("virtualservices", APP)
    changed["metadata"]["labels"] = {"edited": "yes"}
    changed = store.put(changed, "virtualservices", manager="kubectl-edit")  # ...changes meanwhile
    with pytest.raises(LabError, match="changed by someone else"):
        await cluster.set_weights(APP, {"version-v1": 50, "version-v2": 50})
    patch = fake_api.find("PATCH", path)[-1]
    assert patch.headers["content-type"] == MERGE
    assert patch.body["metadata"]["resourceVersion"] != changed["metadata"]["resourceVersion"]


def full_status(observed: int, updated: int = 2) -> dict:
    return {
        "observedGeneration": observed,
        "replicas": 2,
        "updatedReplicas": updated,
        "availableReplicas": 2,
        "readyReplicas": 2,
    }


async def test_a_rollout_is_done_only_once_the_new_generation_is_observed(cluster, store):
    await cluster.apply(manifest("deployment.yaml"))
    store.write_status("deployments", APP, full_status(observed=1))
    await cluster.set_image(APP, "zdlab/demo:v2")
    assert store.get("deployments", APP)["metadata"]["generation"] == 2
    progress: list[str] = []
    task = asyncio.create_task(
        asyncio.to_thread(
            wait_for_rollout,
            cluster.clients.apps,
            "zdlab",
            APP,
            30,
            stop=threading.Event(),
            on_progress=progress.append,
        )
    )
    await eventually(lambda: progress, 10)  # read once; from now on it watches
    assert progress == ["Waiting for deployment spec update to be observed..."]
    # the old generation's status says "all replicas ready": not done
    store.write_status("deployments", APP, full_status(observed=1))
    store.write_status("deployments", APP, full_status(observed=2, updated=1))
    await eventually(lambda: any("1 out of 2 new replicas" in p for p in progress), 10)
    assert not task.done()
    store.write_status("deployments", APP, full_status(observed=2))
    assert await asyncio.wait_for(task, 10) == f"deployment {APP!r} successfully rolled out"
