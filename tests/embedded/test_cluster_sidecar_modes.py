"""Native and classic Istio sidecars at pod deletion, per-pod Istio knobs, the kubelet's 2 s
minimum after preStop (issue 12 items 2, 3, 6, 8)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from cluster_testlib import APP, container, eventually, manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import Event, EventKind

ISTIO = ("istio/destinationrule.yaml", "istio/gateway.yaml", "istio/virtualservice.yaml")


def _deployment(
    *,
    prestop: int = 1,
    annotations: dict[str, str] | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    container(doc)["lifecycle"]["preStop"]["sleep"]["seconds"] = prestop
    meta = doc["spec"]["template"]["metadata"]
    meta["annotations"] = {"sidecar.istio.io/inject": "true", **(annotations or {})}
    if grace is not None:
        doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = grace
    return doc


async def _deploy(c: EmbeddedCluster, doc: dict[str, Any]) -> None:
    for item in ("configmap.yaml", "service.yaml", *ISTIO):
        await c.apply(manifest(item))
    await c.apply(doc)
    await c.wait_rollout(APP, timeout=60)
    await c.config_settled()


async def _inflight(c: EmbeddedCluster) -> bool:
    stats = await c.proxy_stats("gateway", "upstream_rq_active$")
    return sum(int(v) for v in stats.values()) > 0


async def _long_request_across_deletion(
    c: EmbeddedCluster, seconds: float
) -> tuple[httpx.Response, str, float]:
    """Start a long task through the gateway, delete its pod meanwhile; the response."""
    pod = (await c.pods())[0]
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        task = asyncio.create_task(
            client.get(c.gateway_url() + f"/k8s/longTask?seconds={seconds:g}")
        )
        await eventually(lambda: _inflight(c), 5, message="the long task reached the pod")
        t0 = time.time()
        await c.delete(f"pod/{pod.name}")
        response = await task
    await eventually(lambda: c.pod(pod.name).deleted, 20, message="pod gone")
    return response, pod.name, t0


def _of(events: list[Event], name: str) -> list[tuple[str, str, Event]]:
    """(kind, object, event) of one pod's events, in order."""
    return [
        (e.kind, e.obj, e)
        for e in events
        if e.data.get("pod") == name or e.obj in (f"pod/{name}", f"proxy/{name}-sidecar")
    ]


def _first(rows: list[tuple[str, str, Event]], kind: str, obj_prefix: str = "") -> int:
    for i, (k, obj, _) in enumerate(rows):
        if k == kind and obj.startswith(obj_prefix):
            return i
    raise AssertionError(f"no {kind} {obj_prefix} in {[(k, o) for k, o, _ in rows]}")


async def test_native_sidecar_outlives_the_app_and_a_long_request_completes() -> None:
    async with EmbeddedCluster(istio="1.28", kubernetes="1.34") as c:
        assert c.versions.default_sidecar_mode == "native"
        await _deploy(c, _deployment(prestop=1))
        info = (await c.pods())[0]
        assert info.extra["sidecar_mode"] == "native"
        assert info.extra["containers"]["istio-proxy"]["sidecar_mode"] == "native"
        response, name, _ = await _long_request_across_deletion(c, 4)
        assert response.status_code == 200, response.headers
        rows = _of(c.events(), name)
        # start: istio-proxy ready before the app container starts
        ready = next(
            i for i, (_, _, e) in enumerate(rows) if e.data.get("reason") == "SidecarReady"
        )
        assert ready < _first(rows, EventKind.POD_STARTED)
        # deletion: proxy drains at its preStop, stays up through the app's shutdown, exits last
        drain = _first(rows, EventKind.SIDECAR_DRAIN_STARTED)
        assert rows[drain][2].data["trigger"] == "preStop"
        assert _first(rows, EventKind.POD_TERMINATING) < drain
        app_exit = _first(rows, EventKind.CONTAINER_EXITED)
        assert _first(rows, EventKind.SIGTERM, "pod/") < app_exit
        sidecar_exit = _first(rows, EventKind.SIDECAR_EXITED)
        assert drain < app_exit < sidecar_exit
        assert rows[sidecar_exit][2].data["requests_cut"] == 0
        assert rows[sidecar_exit][2].data["sidecar_mode"] == "native"


async def test_classic_sidecar_is_stopped_with_the_app_and_cuts_a_long_request() -> None:
    # the annotation takes precedence over the cluster-wide mode and the versions
    doc = _deployment(prestop=4, annotations={"sidecar.istio.io/nativeSidecar": "false"})
    async with EmbeddedCluster(sidecar_mode="native", sidecar_drain=1.0) as c:
        await _deploy(c, doc)
        assert (await c.pods())[0].extra["sidecar_mode"] == "classic"
        response, name, _ = await _long_request_across_deletion(c, 3)
        assert response.status_code == 503, response.status_code
        rows = _of(c.events(), name)
        drain = _first(rows, EventKind.SIDECAR_DRAIN_STARTED)
        assert rows[drain][2].data["trigger"] == "SIGTERM"
        sidecar_exit = _first(rows, EventKind.SIDECAR_EXITED)
        assert rows[sidecar_exit][2].data["requests_cut"] >= 1
        # the proxy is gone while the app is still in its preStop
        assert sidecar_exit < _first(rows, EventKind.SIGTERM, "pod/")
        assert sidecar_exit < _first(rows, EventKind.CONTAINER_EXITED)


async def test_sidecar_mode_precedence_annotation_then_cluster_then_versions() -> None:
    native = _deployment(annotations={"sidecar.istio.io/nativeSidecar": "true"})
    native["metadata"]["name"] = native["spec"]["template"]["metadata"]["labels"]["app"] = "nat"
    native["spec"]["selector"]["matchLabels"]["app"] = "nat"
    plain = _deployment()
    async with EmbeddedCluster(istio="1.26", kubernetes="1.34", sidecar_injection=True) as c:
        assert c.versions.default_sidecar_mode == "classic"  # ENABLE_NATIVE_SIDECARS=false
        await c.apply([manifest("configmap.yaml"), native, plain])
        await c.wait_rollout("nat", timeout=60)
        await c.wait_rollout(APP, timeout=60)
        modes = {p.deployment: p.extra["sidecar_mode"] for p in await c.pods()}
        assert modes == {"nat": "native", APP: "classic"}
        created = [e for e in c.events() if e.kind == EventKind.POD_CREATED]
        assert {e.data["sidecar_mode"] for e in created} == {"native", "classic"}
    async with EmbeddedCluster(istio="1.28", kubernetes="1.32", sidecar_injection=True) as c:
        assert c.versions.default_sidecar_mode == "classic"  # auto, but kubelet < 1.33
    async with EmbeddedCluster(sidecar_mode="classic", sidecar_injection=True) as c:
        await c.apply([manifest("configmap.yaml"), native, plain])
        await c.wait_rollout("nat", timeout=60)
        await c.wait_rollout(APP, timeout=60)
        modes = {p.deployment: p.extra["sidecar_mode"] for p in await c.pods()}
        assert modes == {"nat": "native", APP: "classic"}


async def test_exit_on_zero_from_the_pod_annotation_and_drain_time_from_drain_duration() -> None:
    config = {
        "terminationDrainDuration": "1s",
        "drainDuration": "30s",
        "proxyMetadata": {
            "EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true",
            "MINIMUM_DRAIN_DURATION": "1s",
        },
    }
    doc = _deployment(
        prestop=5,
        annotations={
            "sidecar.istio.io/nativeSidecar": "false",
            "proxy.istio.io/config": json.dumps(config),
        },
    )
    async with EmbeddedCluster() as c:
        await _deploy(c, doc)
        pod = c.pod((await c.pods())[0].name)
        assert pod.sidecar is not None and pod.sidecar.exit_on_zero
        assert pod.sidecar.envoy is not None and pod.sidecar.envoy.drain_time_s == 30
        response, name, t0 = await _long_request_across_deletion(c, 3)
        assert response.status_code == 200, response.headers
        exited = [
            e for e in c.events() if e.kind == EventKind.SIDECAR_EXITED and e.data["pod"] == name
        ]
        assert exited and exited[0].data["requests_cut"] == 0
        drained = [
            e
            for e in c.events()
            if e.kind == EventKind.SIDECAR_DRAIN_STARTED and e.data["pod"] == name
        ]
        assert drained[0].data["mode"] == "exit-on-zero-active-connections"
        # exits once the connection closed: after the task, long before the app's preStop ends
        assert exited[0].t - t0 < 5


async def test_sigterm_gets_two_seconds_even_when_prestop_used_the_grace_period() -> None:
    doc = _deployment(prestop=3, grace=3, annotations={"sidecar.istio.io/inject": "false"})
    async with EmbeddedCluster(sidecar_injection=False) as c:
        await c.apply([manifest("configmap.yaml"), doc])
        await c.wait_rollout(APP, timeout=60)
        info = (await c.pods())[0]
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            # a request in flight keeps the graceful app from exiting at SIGTERM
            task = asyncio.create_task(
                client.get(f"http://127.0.0.1:{info.port}/k8s/longTask?seconds=10")
            )
            await asyncio.sleep(0.3)  # let the request reach the app before deleting the pod
            await c.delete(f"pod/{info.name}")
            await eventually(lambda: c.pod(info.name).deleted, 15, message="pod gone")
            task.cancel()
        rows = _of(c.events(), info.name)
        sigterm = rows[_first(rows, EventKind.SIGTERM, "pod/")][2]
        sigkill = rows[_first(rows, EventKind.SIGKILL, "pod/")][2]
        start = rows[_first(rows, EventKind.POD_TERMINATING)][2]
        assert sigterm.t - start.t >= 2.9  # the preStop used the whole grace period
        assert 1.9 <= sigkill.t - sigterm.t <= 2.6, sigkill.t - sigterm.t
