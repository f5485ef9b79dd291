"""Kubernetes fidelity of the embedded kubelet and endpoints: OOMKilled only from the memory
limit, and kube-proxy's serving-terminating fallback (KEP-1669) that istiod does not have.

Real processes and real signals; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
from cluster_testlib import APP, container, eventually, manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind

ISTIO = ["istio/destinationrule.yaml", "istio/gateway.yaml", "istio/virtualservice.yaml"]


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        return await client.get(url, headers={"connection": "close"})


def _one_replica(name: str, memory: str = "256Mi") -> dict:
    doc = manifest("deployment.yaml")
    doc["metadata"]["name"] = name
    doc["spec"]["replicas"] = 1
    doc["spec"]["selector"]["matchLabels"]["app"] = name
    doc["spec"]["template"]["metadata"]["labels"]["app"] = name
    container(doc)["resources"]["limits"]["memory"] = memory
    return doc


async def test_only_the_memory_limit_is_oomkilled(lab_cluster: EmbeddedCluster) -> None:
    """The limit kill is OOMKilled/137; a kill -9 from elsewhere is Error/137."""
    c = lab_cluster
    await c.apply([manifest("configmap.yaml"), _one_replica("limit", "96Mi"), _one_replica("ext")])
    await c.wait_rollout("limit", timeout=30)
    await c.wait_rollout("ext", timeout=30)

    # the default ConfigMap sets no MEMORY_LIMIT_MB: the leak grows until the limit kills it
    limit_pod = (await c.pods({"app": "limit"}))[0]
    limit = limit_pod.name
    r = await _get(f"http://127.0.0.1:{limit_pod.port}/k8s/memoryleak")
    assert r.status_code == 200 and "until the memory limit kills it" in r.text
    # an external SIGKILL of the container's process (the kubelet did not send it)
    ext = (await c.pods({"app": "ext"}))[0].name
    proc = c.pod(ext).proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)

    for name, reason in ((limit, "OOMKilled"), (ext, "Error")):
        await eventually(
            lambda n=name: c.pod(n).restarts >= 1 and c.pod(n).ready, 30,
            message=f"{name} killed and restarted",
        )  # fmt: skip
        info = c.pod(name).info()
        assert (info.last_state, info.extra["last_exit_code"]) == (reason, 137), info
        exited = [
            e for e in c.events() if e.obj == f"pod/{name}" and e.kind == EventKind.CONTAINER_EXITED
        ]
        assert exited and exited[0].data["reason"] == reason
        assert exited[0].data["exit_code"] == 137 and exited[0].data["signal"] == signal.SIGKILL
        oom = [e for e in c.events() if e.obj == f"pod/{name}" and e.kind == EventKind.OOM_KILLED]
        assert bool(oom) == (reason == "OOMKilled")
    # the limit kill left no "oom" line of the service's own: nothing killed itself
    assert "zdlab-service oom" not in await c.logs(limit, previous=True)
    sigkills = [e for e in c.events() if e.obj == f"pod/{limit}" and e.kind == EventKind.SIGKILL]
    assert sigkills and sigkills[0].data["rss"] > 96 * 2**20


async def test_kube_proxy_falls_back_to_serving_terminating_endpoints(
    lab_cluster: EmbeddedCluster,
) -> None:
    """Scale a 1-replica hardened Deployment to 0: while its pod is in its preStop sleep
    (terminating, readiness still passing) kube-proxy keeps sending to it, the gateway
    (istiod) does not."""
    c = lab_cluster  # propagation_delay 0.5 s; preStop sleep 5 s
    dep = manifest("deployment.yaml")
    dep["spec"]["replicas"] = 1
    for name in ("configmap.yaml", "service.yaml", *ISTIO):
        await c.apply(manifest(name))
    await c.apply(dep)
    await c.wait_rollout(APP, timeout=30)
    await c.config_settled()
    (pod,) = [p.name for p in await c.pods({"app": APP})]
    assert (await _get(c.service_url() + "/k8s/demo")).status_code == 200
    assert (await _get(c.gateway_url() + "/k8s/demo")).status_code == 200

    t0 = time.time()
    await c.scale(APP, 0)  # no new pod will come: the terminating one is all there is
    removed = await eventually(
        lambda: [
            e for e in c.events(since=t0)
            if e.kind == EventKind.ENDPOINT_REMOVED and e.obj == f"pod/{pod}"
        ],
        5,
        message="the endpoint left the rotation",
    )  # fmt: skip
    assert removed[0].data["reason"] == "terminating"
    assert removed[0].data["serving_terminating"] is True

    def pushed(proxy: str) -> list:
        return [
            e for e in c.events(since=t0)
            if e.kind == EventKind.CONFIG_PUSHED and e.obj == proxy
            and e.data.get("changed_at", 0) >= removed[0].t - 0.01
        ]  # fmt: skip

    kube = await eventually(lambda: pushed(f"proxy/kube-proxy-{APP}"), 5, message="kube-proxy")
    gateway = await eventually(lambda: pushed("proxy/gateway"), 5, message="gateway")
    # kube-proxy learnt the change and kept the pod: no ready endpoint, it serves, it terminates
    assert kube[0].data["endpoints"] == [pod] and kube[0].data["removed"] == []
    assert kube[0].data["terminating_fallback"] == [pod]
    # istiod dropped it
    assert pod in gateway[0].data["removed"] and gateway[0].data["endpoints"] == []

    p = c.pod(pod)
    assert p.terminating and p.ready and not p.deleted, "the pod left its preStop too soon"
    for _ in range(5):
        r = await _get(c.service_url() + "/k8s/demo")
        assert r.status_code == 200, r.text
    through_gateway = await _get(c.gateway_url() + "/k8s/demo")
    assert through_gateway.status_code == 503  # no healthy upstream: istiod semantics
    assert p.terminating and p.ready and not p.deleted, "the requests were not served in preStop"
    rows = (await c.proxy_config("endpoints", "gateway")).rows
    assert not any(pod in str(r) for r in rows), rows

    # once its readiness fails (SIGTERM after the preStop) kube-proxy drops it as well
    await eventually(
        lambda: [
            e for e in c.events(since=t0)
            if e.kind == EventKind.CONFIG_PUSHED and e.obj == f"proxy/kube-proxy-{APP}"
            and pod in e.data.get("removed", [])
        ],
        30,
        message="kube-proxy dropped the pod once it stopped serving",
    )  # fmt: skip
    rows = (await c.proxy_config("endpoints", f"kube-proxy-{APP}")).rows
    assert not any(pod in str(r) for r in rows), rows


def test_endpoint_choice_of_kube_proxy_and_istiod() -> None:
    from lab_app.cluster.embedded.dataplane import (
        SliceEndpoint,
        istiod_endpoints,
        kube_proxy_endpoints,
    )

    def ep(pod: str, *, ready: bool, terminating: bool = False) -> SliceEndpoint:
        return SliceEndpoint("127.0.0.1", 1, pod=pod, ready=ready, terminating=terminating)

    new, old = ep("new", ready=True), ep("old", ready=False, terminating=True)
    # a ready endpoint exists: both use only it
    assert [e.pod for e in kube_proxy_endpoints([new, old])] == ["new"]
    assert [e.pod for e in istiod_endpoints([new, old])] == ["new"]
    # none ready: kube-proxy falls back to serving-terminating ones, istiod has nothing
    assert [(e.pod, e.ready) for e in kube_proxy_endpoints([old])] == [("old", True)]
    assert istiod_endpoints([old]) == []
    # not serving: no fallback either
    gone = SliceEndpoint("127.0.0.1", 1, pod="x", ready=False, serving=False, terminating=True)
    assert kube_proxy_endpoints([gone]) == []
