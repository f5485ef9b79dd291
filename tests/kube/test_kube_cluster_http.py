"""KubeCluster through the real ``kubernetes`` client against a canned-JSON HTTP server:
the requests it sends (paths, query, content types, bodies) and how it reads answers,
watch streams included."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from pathlib import Path

import pytest
from kube_apiserver import Recorded, Reply, Stream, not_found, wait_until
from kubernetes import client as k8s

from lab_app.cluster.events import EventKind
from lab_app.cluster.kube import KubeCluster
from lab_app.errors import LabError
from lab_app.manifests import load_manifests

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
NS = "/api/v1/namespaces/zdlab"
APPS = "/apis/apps/v1/namespaces/zdlab"
ISTIO = "/apis/networking.istio.io/v1/namespaces/zdlab"
APP = "zero-downtime-rollingupdate"


def echo(request: Recorded) -> Reply:
    return Reply(200, request.body)


def serialize(obj) -> dict:
    return k8s.ApiClient().sanitize_for_serialization(obj)


def manifest(relative: str) -> dict:
    path = MANIFESTS / relative
    if not path.is_file():
        pytest.skip(f"manifests/{relative} not written yet")
    (obj,) = load_manifests(path)
    return obj


@pytest.fixture
async def cluster(kubeconfig, tmp_path):
    kind_config = tmp_path / "kind.yaml"
    kind_config.write_text(
        "nodes:\n- extraPortMappings:\n  - {containerPort: 31380, hostPort: 8080}\n"
        "  - {containerPort: 30080, hostPort: 30080, listenAddress: 127.0.0.1}\n"
    )
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False, kind_config=kind_config)
    yield cluster
    await cluster.close()


async def test_start_probes_the_server(cluster, fake_api):
    from lab_app.cluster.base import Cluster

    assert isinstance(cluster, Cluster)
    assert (cluster.backend, cluster.namespace) == ("kubernetes", "zdlab")
    assert cluster.server_version == "v1.33.1"
    assert cluster.context.flavour == "kind"
    assert [r.path for r in fake_api.requests[:2]] == ["/version/", NS]


async def test_start_creates_a_missing_namespace_with_the_manifest_labels(kubeconfig, fake_api):
    fake_api.on("GET", NS, Reply(404, not_found(NS)))
    fake_api.on("PATCH", NS, echo)
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False)
    await cluster.close()
    (created,) = fake_api.find("PATCH", NS)
    assert created.headers["content-type"] == "application/apply-patch+yaml"
    labels = created.body["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    if (MANIFESTS / "namespace.yaml").is_file():
        expected = load_manifests(MANIFESTS / "namespace.yaml")[0]["metadata"]["labels"]
        assert labels == expected


async def test_apply_is_server_side_apply_in_dependency_order(cluster, fake_api):
    objects = [
        manifest("istio/virtualservice-v1-v2.yaml"),
        manifest("istio/destinationrule.yaml"),
        manifest("deployment.yaml"),
        manifest("service.yaml"),
        manifest("configmap.yaml"),
    ]
    paths = [
        f"{ISTIO}/virtualservices/{APP}",
        f"{ISTIO}/destinationrules/{APP}",
        f"{APPS}/deployments/{APP}",
        f"{NS}/services/{APP}",
        f"{NS}/configmaps/cluster",
    ]
    for path in paths:
        fake_api.on("PATCH", path, echo)
    applied = await cluster.apply(objects)
    assert applied == [
        "configmap/cluster",
        f"service/{APP}",
        f"deployment/{APP}",
        f"destinationrule/{APP}",
        f"virtualservice/{APP}",
    ]
    patches = [r for r in fake_api.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == list(reversed(paths))  # DR before VS: make before break
    for request, original in zip(patches, reversed(objects), strict=True):
        assert request.headers["content-type"] == "application/apply-patch+yaml"
        assert request.query == {"fieldManager": "zdlab", "force": "true"}
        assert request.body["metadata"]["namespace"] == "zdlab"
        expected = copy.deepcopy(original)
        expected["metadata"]["namespace"] = "zdlab"
        assert request.body == expected


async def test_apply_reports_the_server_message(cluster, fake_api):
    status = {"kind": "Status", "code": 422, "message": 'Deployment "x" is invalid: spec.replicas'}
    fake_api.on("PATCH", f"{APPS}/deployments/{APP}", Reply(422, status))
    with pytest.raises(LabError, match=r"HTTP 422 Deployment \"x\" is invalid"):
        await cluster.apply(manifest("deployment.yaml"))


async def test_istio_kinds_without_istio(cluster, fake_api):
    with pytest.raises(LabError, match="is Istio installed"):
        await cluster.apply(manifest("istio/gateway.yaml"))


async def test_set_image_is_a_strategic_merge_patch(cluster, fake_api):
    current = manifest("deployment.yaml")
    fake_api.on("GET", f"{APPS}/deployments/{APP}", current)
    fake_api.on("PATCH", f"{APPS}/deployments/{APP}", Reply(200, current))
    await cluster.set_image(APP, "zdlab/demo:v2")
    (patch,) = fake_api.find("PATCH", f"{APPS}/deployments/{APP}")
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    container = current["spec"]["template"]["spec"]["containers"][0]["name"]
    assert patch.body == {
        "spec": {
            "template": {"spec": {"containers": [{"name": container, "image": "zdlab/demo:v2"}]}}
        }
    }
    with pytest.raises(LabError, match="has no container 'nope'"):
        await cluster.set_image(APP, "zdlab/demo:v2", container="nope")


async def test_scale_patches_the_scale_subresource(cluster, fake_api):
    scale = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": APP},
        "spec": {"replicas": 3},
    }
    fake_api.on("PATCH", f"{APPS}/deployments/{APP}/scale", Reply(200, scale))
    await cluster.scale(APP, 3)
    (patch,) = fake_api.find("PATCH", f"{APPS}/deployments/{APP}/scale")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.body == {"spec": {"replicas": 3}}
    with pytest.raises(LabError, match="deployment/other not found"):
        await cluster.scale("other", 1)


async def test_set_weights_patches_the_virtualservice_and_records_an_event(cluster, fake_api):
    vs = manifest("istio/virtualservice-v1-v2.yaml")
    vs["metadata"]["resourceVersion"] = "7"
    dr = manifest("istio/destinationrule.yaml")
    fake_api.on("GET", f"{ISTIO}/virtualservices/{APP}", vs)
    fake_api.on("GET", f"{ISTIO}/destinationrules", {"items": [dr]})
    fake_api.on("PATCH", f"{ISTIO}/virtualservices/{APP}", echo)
    before = time.time()
    await cluster.set_weights(APP, {"version-v1": 50, "version-v2": 50})
    (patch,) = fake_api.find("PATCH", f"{ISTIO}/virtualservices/{APP}")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.query == {"fieldManager": "zdlab"}
    assert patch.body["metadata"] == {"resourceVersion": "7"}
    assert [r["weight"] for r in patch.body["spec"]["http"][0]["route"]] == [50, 50]
    (event,) = cluster.events(since=before)
    assert (event.kind, event.obj) == (EventKind.WEIGHTS_CHANGED, f"virtualservice/{APP}")
    assert event.data["weights"] == {"version-v1": 50, "version-v2": 50}


async def test_set_weights_refuses_a_missing_subset_without_patching(cluster, fake_api):
    dr = manifest("istio/destinationrule.yaml")
    dr["spec"]["subsets"] = [s for s in dr["spec"]["subsets"] if s["name"] != "version-v3"]
    fake_api.on(
        "GET", f"{ISTIO}/virtualservices/{APP}", manifest("istio/virtualservice-v1-v2.yaml")
    )
    fake_api.on("GET", f"{ISTIO}/destinationrules", {"items": [dr]})
    with pytest.raises(LabError, match="subset 'version-v3' is not defined"):
        await cluster.set_weights(APP, {"version-v1": 50, "version-v3": 50})
    assert fake_api.find("PATCH", f"{ISTIO}/virtualservices/{APP}") == []
    assert cluster.events() == []


async def test_concurrent_edit_of_the_virtualservice(cluster, fake_api):
    fake_api.on(
        "GET", f"{ISTIO}/virtualservices/{APP}", manifest("istio/virtualservice-v1-v2.yaml")
    )
    fake_api.on(
        "GET", f"{ISTIO}/destinationrules", {"items": [manifest("istio/destinationrule.yaml")]}
    )
    fake_api.on("PATCH", f"{ISTIO}/virtualservices/{APP}", Reply(409, {"code": 409}))
    with pytest.raises(LabError, match="changed by someone else"):
        await cluster.set_weights(APP, {"version-v2": 100})


async def test_delete_by_ref_and_by_manifest(cluster, fake_api):
    fake_api.on("DELETE", f"{APPS}/deployments/{APP}", {"kind": "Status", "status": "Success"})
    fake_api.on("DELETE", f"{ISTIO}/virtualservices/{APP}", {"kind": "Status"})
    fake_api.on("DELETE", f"{ISTIO}/destinationrules/{APP}", {"kind": "Status"})
    assert await cluster.delete(f"deployment/{APP}") == [f"deployment/{APP}"]
    (request,) = fake_api.find("DELETE", f"{APPS}/deployments/{APP}")
    assert request.query == {"propagationPolicy": "Background"}
    assert await cluster.delete("deploy/missing") == []  # 404: already gone
    deleted = await cluster.delete(
        [manifest("istio/destinationrule.yaml"), manifest("istio/virtualservice-v1-v2.yaml")]
    )
    assert deleted == [f"virtualservice/{APP}", f"destinationrule/{APP}"]  # break before unmake


async def test_pods_and_logs(cluster, fake_api):
    from test_kube_eventmap import pod

    fake_api.on(
        "GET",
        f"{NS}/pods",
        {"items": [serialize(pod("b", running=True, ready=True)), serialize(pod("a"))]},
    )
    fake_api.on("GET", f"{NS}/pods/a", serialize(pod("a")))
    fake_api.on("GET", f"{NS}/pods/a/log", Reply(200, "zdlab-service ready port=8080\n"))
    pods = await cluster.pods({"app": "web", "version": "v1"})
    assert [p.name for p in pods] == ["a", "b"]
    assert pods[1].ready and not pods[0].ready
    assert fake_api.find("GET", f"{NS}/pods")[0].query["labelSelector"] == "app=web,version=v1"
    assert await cluster.logs("pod/a", tail=5) == "zdlab-service ready port=8080\n"
    log_request = fake_api.find("GET", f"{NS}/pods/a/log")[0]
    assert log_request.query == {"container": "demo", "tailLines": "5"}


async def test_gateway_and_service_urls(cluster, fake_api, monkeypatch):
    monkeypatch.delenv("ZDLAB_GATEWAY_URL", raising=False)
    from test_kube_gateway import ingress_gateway

    fake_api.on(
        "GET",
        "/api/v1/namespaces/istio-system/services/istio-ingressgateway",
        serialize(ingress_gateway()),
    )
    assert cluster.gateway_url() == "http://127.0.0.1:8080"
    service = manifest("service.yaml")
    fake_api.on("GET", f"{NS}/services/{APP}", service)
    with pytest.raises(LabError, match="needs a NodePort Service"):
        cluster.service_url()
    node_port = copy.deepcopy(service)
    node_port["spec"]["type"] = "NodePort"
    node_port["spec"]["ports"][0]["nodePort"] = 30080
    fake_api.on("GET", f"{NS}/services/{APP}", node_port)
    assert cluster.service_url() == "http://127.0.0.1:30080"


async def test_no_istio_gateway(cluster, fake_api, monkeypatch):
    monkeypatch.delenv("ZDLAB_GATEWAY_URL", raising=False)
    with pytest.raises(LabError, match="is Istio installed"):
        cluster.gateway_url()


async def test_wait_rollout_can_be_cancelled(cluster, fake_api):
    from test_kube_rollout import deployment

    fake_api.on("GET", f"{APPS}/deployments/web", serialize(deployment(available=1)))
    fake_api.on("GET", f"{APPS}/deployments", Stream([], hold_seconds=60), watch=True)
    task = asyncio.create_task(cluster.wait_rollout("web", timeout=60))
    await asyncio.to_thread(wait_until, lambda: fake_api.find("GET", f"{APPS}/deployments"))
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5


# --- watches -------------------------------------------------------------------------------
def empty_list(kind: str) -> dict:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "10"}, "items": []}


async def test_watches_feed_events_and_subscribers_and_stop_on_close(kubeconfig, fake_api):
    from test_kube_eventmap import core_event, endpoint_slice, pod

    gate = threading.Event()
    later = threading.Event()  # the Killing event comes once the pod (and its preStop) is known
    fake_api.on("GET", f"{NS}/pods", empty_list("PodList"))
    fake_api.on(
        "GET",
        f"{NS}/pods",
        Stream(
            [
                {"type": "ADDED", "object": serialize(pod("web-1"))},
                {"type": "MODIFIED", "object": serialize(pod("web-1", running=True, ready=True))},
            ],
            start=gate,
        ),
        watch=True,
    )
    slices = "/apis/discovery.k8s.io/v1/namespaces/zdlab/endpointslices"
    fake_api.on("GET", slices, empty_list("EndpointSliceList"))
    ready_slice = endpoint_slice("s1", [("web-1", "10.0.0.1", True, True, False)])
    fake_api.on(
        "GET",
        slices,
        Stream([{"type": "ADDED", "object": serialize(ready_slice)}], start=gate),
        watch=True,
    )
    fake_api.on("GET", f"{APPS}/deployments", empty_list("DeploymentList"))
    fake_api.on("GET", f"{APPS}/deployments", Stream([]), watch=True)
    fake_api.on("GET", f"{NS}/events", empty_list("EventList"))
    killing = core_event("Killing", pod_name="web-1", message="Stopping container demo")
    fake_api.on(
        "GET",
        f"{NS}/events",
        Stream([{"type": "ADDED", "object": serialize(killing)}], start=later),
        watch=True,
    )

    cluster = await KubeCluster.start(kubeconfig=kubeconfig)
    try:
        received = []

        async def collect():
            async for event in cluster.subscribe():
                received.append(event)

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0)  # let the subscription register before events flow
        before = time.time()
        gate.set()

        def seen():
            return {e.kind for e in cluster.events()}

        wanted = {
            EventKind.POD_CREATED,
            EventKind.POD_STARTED,
            EventKind.POD_READY,
            EventKind.ENDPOINT_ADDED,
            EventKind.PRESTOP_STARTED,
        }
        await asyncio.to_thread(wait_until, lambda: EventKind.POD_READY in seen(), 10)
        later.set()
        await asyncio.to_thread(wait_until, lambda: wanted <= seen(), 10)
        assert all(e.t >= before for e in cluster.events())
        ready = next(e for e in cluster.events() if e.kind == EventKind.POD_READY)
        assert ready.obj == "pod/web-1"
        watch_request = next(r for r in fake_api.find("GET", f"{NS}/pods") if "watch" in r.query)
        assert watch_request.query["resourceVersion"] == "10"  # from the list: nothing missed
    finally:
        started = time.monotonic()
        await cluster.close()  # the streams are still open: close must not wait for them
        closed_in = time.monotonic() - started
    await asyncio.wait_for(collector, 5)  # the subscription ends with close()
    assert wanted <= {e.kind for e in received}
    assert closed_in < 5, f"close() took {closed_in:.1f} s"
    assert all(not loop.alive for loop in cluster._watches)
    with pytest.raises(LabError, match="closed"):
        await cluster.pods()


async def test_a_failing_watch_says_so_once(kubeconfig, fake_api):
    # nothing registered for the lists: every watch gets 404 and retries with backoff
    cluster = await KubeCluster.start(kubeconfig=kubeconfig)
    try:
        notes = [e for e in cluster.events() if e.kind == EventKind.NOTE]
        assert {e.obj for e in notes} == {
            "watch/pods",
            "watch/endpointslices",
            "watch/deployments",
            "watch/events",
        }
        assert all("HTTP 404" in e.message for e in notes)
    finally:
        await cluster.close()


async def test_weights_not_seen_in_the_gateway_are_reported(cluster, fake_api):
    fake_api.on(
        "GET", f"{ISTIO}/virtualservices", {"items": [manifest("istio/virtualservice.yaml")]}
    )
    fake_api.on("GET", "/api/v1/namespaces/istio-system/pods", {"items": []})
    before = time.time()
    await cluster._gateway_sync.await_push("weights", before, {"virtualservice": APP}, timeout=1)
    (note,) = cluster.events(since=before)
    assert (note.kind, note.obj) == (EventKind.NOTE, "proxy/gateway")
    assert "not seen in the gateway within 1 s (no ready ingress gateway pod" in note.message


async def test_connect_kubernetes_gives_a_kube_cluster(kubeconfig, fake_api):
    from lab_app.cluster import connect

    cluster = await connect("kubernetes", kubeconfig=kubeconfig, watch=False)
    try:
        assert isinstance(cluster, KubeCluster)
        assert repr(cluster).startswith("KubeCluster(context='kind-zdlab'")
        assert "SECRET-TOKEN" not in repr(cluster)
    finally:
        await cluster.close()
