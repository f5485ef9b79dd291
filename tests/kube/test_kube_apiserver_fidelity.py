"""The stateful fake API server behaves like kube-apiserver where the backend depends on it,
checked through the real ``kubernetes`` client: server-side apply and its conflicts,
resourceVersion and generation, watches with bookmarks and 410 Gone."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import KubeClients, load_configuration

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "demo", "image": "zdlab/demo:v1"}]},
        },
    },
}


@pytest.fixture
def clients(kubeconfig, store) -> Iterator[KubeClients]:
    configuration, info = load_configuration(kubeconfig)
    clients = KubeClients(k8s.ApiClient(configuration), info)
    yield clients
    clients.close()


def apply(clients: KubeClients, body=DEPLOYMENT, manager="zdlab", **kwargs) -> k8s.V1Deployment:
    return clients.apps.patch_namespaced_deployment(
        "web", "zdlab", body, field_manager=manager, _content_type=APPLY, **kwargs
    )


def owners(deployment: k8s.V1Deployment) -> dict[tuple[str, str], dict]:
    return {(m.manager, m.operation): m.fields_v1 for m in deployment.metadata.managed_fields}


def test_apply_creates_then_records_the_manager_and_is_idempotent(clients):
    created = apply(clients)
    assert created.metadata.generation == 1
    assert created.metadata.uid
    fields = owners(created)[("zdlab", "Apply")]
    assert fields["f:spec"]["f:replicas"] == {}
    assert fields["f:metadata"] == {"f:labels": {"f:app": {}}}
    again = apply(clients)  # nothing changes: upstream writes nothing, no new version
    assert again.metadata.resource_version == created.metadata.resource_version


def test_apply_needs_a_field_manager(clients):
    with pytest.raises(ApiException) as caught:
        clients.apps.patch_namespaced_deployment("web", "zdlab", DEPLOYMENT, _content_type=APPLY)
    assert caught.value.status == 422
    assert "fieldManager: Required value" in json.loads(caught.value.body)["message"]


def test_a_field_another_manager_changed_conflicts_unless_forced(clients):
    apply(clients)
    edited = clients.apps.patch_namespaced_deployment(
        "web", "zdlab", {"spec": {"replicas": 5}}, field_manager="kubectl-edit", _content_type=MERGE
    )
    assert owners(edited)[("kubectl-edit", "Update")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners(edited)[("zdlab", "Apply")]["f:spec"]
    with pytest.raises(ApiException) as caught:
        apply(clients)
    status = json.loads(caught.value.body)
    assert (caught.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    )
    assert status["details"]["causes"] == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    assert clients.apps.read_namespaced_deployment("web", "zdlab").spec.replicas == 5
    forced = apply(clients, force=True)
    assert forced.spec.replicas == 2
    assert ("kubectl-edit", "Update") not in owners(forced)  # it owned nothing else


def test_setting_the_same_value_shares_the_field_without_conflict(clients):
    apply(clients)
    same = copy.deepcopy(DEPLOYMENT)
    same["spec"] = {"replicas": 2}
    shared = apply(clients, same, manager="other")
    assert "f:replicas" in owners(shared)[("other", "Apply")]["f:spec"]
    assert "f:replicas" in owners(shared)[("zdlab", "Apply")]["f:spec"]


def test_a_field_dropped_from_the_configuration_is_removed(clients):
    apply(clients)
    fewer = copy.deepcopy(DEPLOYMENT)
    del fewer["metadata"]["labels"]
    assert apply(clients, fewer).metadata.labels is None


def test_every_write_gets_a_new_version_and_a_stale_one_is_refused(clients, store):
    first = apply(clients)
    second = clients.apps.patch_namespaced_deployment(
        "web", "zdlab", {"metadata": {"labels": {"tier": "web"}}}, _content_type=MERGE
    )
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert second.metadata.generation == 1  # metadata only: no new generation
    stale = {"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {}}
    with pytest.raises(ApiException) as caught:
        clients.apps.patch_namespaced_deployment("web", "zdlab", stale, _content_type=MERGE)
    assert caught.value.status == 409
    assert "the object has been modified" in json.loads(caught.value.body)["message"]
    spec_change = {
        "spec": {"template": {"spec": {"containers": [{"name": "demo", "image": "v2"}]}}}
    }
    changed = clients.apps.patch_namespaced_deployment(
        "web", "zdlab", spec_change, _content_type=MERGE
    )
    assert changed.metadata.generation == 2
    status = store.write_status("deployments", "web", {"observedGeneration": 2, "replicas": 2})
    assert status["metadata"]["generation"] == 2  # the controller's status write: no new generation
    read = clients.apps.read_namespaced_deployment("web", "zdlab")
    assert read.status.observed_generation == 2
    assert int(read.metadata.resource_version) > int(changed.metadata.resource_version)


def test_watch_sends_bookmarks_with_the_latest_version(clients, store):
    apply(clients)
    since = str(store.resource_version)
    store.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "configmaps")
    watcher = k8s_watch.Watch()
    seen = []
    for event in watcher.stream(
        clients.apps.list_namespaced_deployment,
        "zdlab",
        resource_version=since,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        seen.append(event["type"])
        if event["type"] == "BOOKMARK":
            watcher.stop()
    assert seen == ["BOOKMARK"]  # the ConfigMap is not in this watch, its version is
    assert watcher.resource_version == str(store.resource_version)


def watch_deployments_gone(clients, resource_version: str) -> ApiException:
    """Watch the Deployments from ``resource_version``: the server must answer 410 Gone."""
    with pytest.raises(ApiException) as caught:
        for _ in k8s_watch.Watch().stream(
            clients.apps.list_namespaced_deployment,
            "zdlab",
            resource_version=resource_version,
            timeout_seconds=5,
        ):
            pass
    assert caught.value.status == 410
    return caught.value


@pytest.mark.parametrize("gone_as", ["event", "status"])
def test_a_watch_from_a_compacted_version_is_gone(clients, store, gone_as):
    store.gone_as = gone_as
    old = str(store.resource_version)
    apply(clients)
    store.compact()
    gone = watch_deployments_gone(clients, old)
    if gone_as == "event":  # the watch cache's ERROR event: the client raises with its Status
        assert gone.reason.startswith("Expired: too old resource version")
    assert store.expired == [old]


def test_history_keeps_only_the_last_events(clients, store):
    store.history = 2
    old = str(store.resource_version)
    for replicas in (1, 2, 3):
        body = copy.deepcopy(DEPLOYMENT)
        body["spec"]["replicas"] = replicas
        apply(clients, body)
    watch_deployments_gone(clients, old)
    listing = clients.apps.list_namespaced_deployment("zdlab")
    assert listing.metadata.resource_version == str(store.resource_version)
    assert [d.spec.replicas for d in listing.items] == [3]


def test_creating_in_a_missing_namespace_is_not_found(clients):
    with pytest.raises(ApiException) as caught:
        clients.apps.patch_namespaced_deployment(
            "web", "elsewhere", DEPLOYMENT, field_manager="zdlab", _content_type=APPLY
        )
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'namespaces "elsewhere" not found'
