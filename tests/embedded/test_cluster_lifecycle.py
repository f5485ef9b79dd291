"""Pods as the kubelet runs them: rollouts, probes, termination, OOM kills, restarts.

Real processes and real signals; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import time

import httpx
from cluster_testlib import APP, container, eventually, manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        return await client.get(url, headers={"connection": "close"})


def _kinds(cluster: EmbeddedCluster, obj: str | None = None) -> list[str]:
    return [e.kind for e in cluster.events() if obj is None or e.obj == obj]


async def test_rolling_update_replaces_pods_make_before_break(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    v1 = await c.build_image("v1")
    v2 = await c.build_image("v2")
    assert v1 != v2
    for name in ("configmap.yaml", "service.yaml", "deployment.yaml"):
        await c.apply(manifest(name))
    await c.wait_rollout(APP, timeout=30)
    pods = await c.pods()
    assert len(pods) == 2 and all(p.ready and p.phase == "Running" for p in pods)
    for p in pods:
        assert re.fullmatch(rf"{APP}-[bcdfghjklmnpqrstvwxz2456789]{{10}}-[a-z0-9]{{5}}", p.name)
        assert p.image == v1 and p.ip == "127.0.0.1" and p.port > 0
    body = await eventually(
        lambda: _get(c.service_url() + "/version"), 10, message="the Service answers"
    )
    assert body.json()["version"] == "v1"
    assert body.json()["image_id"] == "sha256:" + v1.rsplit(":", 1)[1]

    rollout_start = time.time()
    await c.set_image(APP, "zdlab/demo:v2")
    await c.wait_rollout(APP, timeout=60)
    new = await c.pods({"app": APP})
    updated = [p for p in new if p.image == v2 and p.phase == "Running"]
    assert len(updated) == 2 and all(p.ready for p in updated)
    # maxUnavailable 0: every old pod's deletion comes after one more new pod became ready
    events = c.events(since=rollout_start)
    ready = [e.t for e in events if e.kind == EventKind.POD_READY]
    deleted = [e.t for e in events if e.kind == EventKind.POD_TERMINATING]
    assert len(deleted) == 2 and len(ready) >= 2
    for i, t in enumerate(sorted(deleted)):
        assert sum(1 for r in ready if r <= t) >= i + 1
    # the old pods get their preStop (5 s) before SIGTERM (the last one starts as the
    # rollout completes: terminating pods do not count for it)
    await eventually(
        lambda: len([e for e in c.events(since=rollout_start) if e.kind == "PreStopStarted"]) == 2,
        5,
        message="both old pods in preStop",
    )
    v2_body = await eventually(
        lambda: _v2(c),
        15,
        message="kube-proxy reaches v2",
    )
    assert v2_body


async def _v2(c: EmbeddedCluster) -> bool:
    r = await _get(c.service_url() + "/k8s/demo")
    return r.status_code == 200 and r.headers["x-app-version"] == "v2"


async def test_logs_and_env(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    await c.apply([manifest("configmap.yaml"), manifest("deployment.yaml")])
    await c.wait_rollout(APP, timeout=30)
    pod = (await c.pods())[0]
    log = await eventually(lambda: c.logs(pod.name), 10, message="a log")
    assert "zdlab-service starting" in log
    r = await _get(f"http://127.0.0.1:{pod.port}/version")
    assert r.json()["pod"] == pod.name  # POD_NAME from the downward API
    assert r.json()["shutdown_mode"] == "graceful"


async def test_oom_kills_and_restarts(lab_cluster: EmbeddedCluster) -> None:
    """Only the memory limit (limit 96Mi) is OOMKilled; the service's own MEMORY_LIMIT_MB
    self-kill is a SIGKILL the kubelet did not send: reason Error, exit 137, as on a node."""
    c = lab_cluster
    kubelet = manifest("deployment.yaml")
    kubelet["metadata"]["name"] = "oom-kubelet"
    kubelet["spec"]["replicas"] = 1
    container(kubelet)["resources"]["limits"]["memory"] = "96Mi"
    selfkill = manifest("deployment.yaml")
    selfkill["metadata"]["name"] = "oom-self"
    selfkill["spec"]["replicas"] = 1
    container(selfkill)["env"].append({"name": "MEMORY_LIMIT_MB", "value": "90"})
    container(selfkill)["resources"]["limits"]["memory"] = "1Gi"
    for doc in (kubelet, selfkill):
        doc["spec"]["selector"]["matchLabels"]["app"] = doc["metadata"]["name"]
        doc["spec"]["template"]["metadata"]["labels"]["app"] = doc["metadata"]["name"]
    await c.apply([manifest("configmap.yaml"), kubelet, selfkill])
    await c.wait_rollout("oom-kubelet", timeout=30)
    await c.wait_rollout("oom-self", timeout=30)
    expected = {"oom-kubelet": "OOMKilled", "oom-self": "Error"}
    for name, reason in expected.items():
        pod = (await c.pods({"app": name}))[0]
        r = await _get(f"http://127.0.0.1:{pod.port}/k8s/memoryleak")
        assert r.status_code == 200
        await eventually(
            lambda n=pod.name: c.pod(n).restarts >= 1 and c.pod(n).ready, 30,
            message=f"{name} killed and restarted",
        )  # fmt: skip
        info = c.pod(pod.name).info()
        assert info.last_state == reason and info.extra["last_exit_code"] == 137
        kinds = _kinds(c, f"pod/{pod.name}")
        assert EventKind.RESTARTED in kinds
        assert (EventKind.OOM_KILLED in kinds) == (reason == "OOMKilled")
    # the previous container's log shows the service's own oom line
    pod = (await c.pods({"app": "oom-self"}))[0]
    assert "zdlab-service oom" in await c.logs(pod.name, previous=True)


async def test_crash_backoff_and_liveness_kill(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    del container(doc)["lifecycle"]
    container(doc)["livenessProbe"].update(periodSeconds=1, timeoutSeconds=1, failureThreshold=2)
    await c.apply([manifest("configmap.yaml"), doc])
    await c.wait_rollout(APP, timeout=30)
    name = (await c.pods())[0].name
    pod = c.pod(name)
    # /k8s/shutdown exits 0: restarted at once (first restart), then with back-off 10 s x 0.05
    for n in (1, 2):
        await eventually(lambda: c.pod(name).ready, 20, message="ready")
        await _get(f"http://127.0.0.1:{pod.app_port}/k8s/shutdown")
        await eventually(lambda n=n: c.pod(name).restarts >= n, 20, message=f"restart {n}")
    backoffs = [e for e in c.events() if e.obj == f"pod/{name}" and "Back-off" in e.message]
    assert [e.data["backoff_seconds"] for e in backoffs] == [0.5]
    assert pod.last_state == "Completed"
    # a 6 s stop-the-world pause fails liveness twice -> SIGTERM, SIGKILL after grace 2 s
    await eventually(lambda: c.pod(name).ready, 20, message="ready again")
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        with contextlib.suppress(httpx.HTTPError):  # the container is killed under it
            await client.get(f"http://127.0.0.1:{pod.app_port}/k8s/fullgc?seconds=6")
    await eventually(lambda: c.pod(name).restarts >= 3, 30, message="liveness restart")
    kinds = _kinds(c, f"pod/{name}")
    assert EventKind.SIGKILL in kinds
    failed = [
        e for e in c.events() if e.kind == EventKind.PROBE_FAILED and e.data["probe"] == "liveness"
    ]
    assert len(failed) >= 2


async def test_prestop_counts_against_the_grace_period(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    # an exec sleep (the API server refuses a native sleep longer than the grace period)
    container(doc)["lifecycle"]["preStop"] = {"exec": {"command": ["sleep", "10"]}}
    await c.apply([manifest("configmap.yaml"), doc])
    await c.wait_rollout(APP, timeout=30)
    name = (await c.pods())[0].name
    t0 = time.monotonic()
    await c.delete(f"pod/{name}")
    await eventually(lambda: c.pod(name).deleted, 10, message="pod gone")
    took = time.monotonic() - t0
    assert 1.8 <= took < 6, took
    kinds = _kinds(c, f"pod/{name}")
    assert kinds.index(EventKind.PRESTOP_STARTED) < kinds.index(EventKind.PRESTOP_FINISHED)
    assert EventKind.SIGKILL in kinds
    # the ReplicaSet replaced it
    await c.wait_rollout(APP, timeout=30)
    assert [p.name for p in await c.pods()] != [name]


async def test_a_missing_configmap_holds_the_pod_until_it_exists(
    lab_cluster: EmbeddedCluster,
) -> None:
    c = lab_cluster
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    await c.apply(doc)

    async def waiting() -> list:
        return [p for p in await c.pods() if p.extra["reason"] == "CreateContainerConfigError"]

    info = (await eventually(waiting, 10, message="CreateContainerConfigError"))[0]
    assert info.phase == "Pending" and not info.ready and info.pid is None
    await c.apply(manifest("configmap.yaml"))
    await c.wait_rollout(APP, timeout=30)
    assert (await c.pods())[0].name == info.name
