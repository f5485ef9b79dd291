"""The data plane: endpoint changes reach kube-proxy and the gateway late, on purpose;
weights move traffic; a sidecar drains like pilot-agent."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
from cluster_testlib import APP, container, eventually, manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind

ISTIO = ["istio/destinationrule.yaml", "istio/gateway.yaml"]


async def _versions(url: str, n: int) -> dict[str, int]:
    out: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for _ in range(n):
            r = await client.get(url)
            key = f"{r.status_code} {r.headers.get('x-app-version', '?')}"
            out[key] = out.get(key, 0) + 1
    return out


async def test_endpoint_removal_reaches_proxies_after_the_configured_delay(
    lab_cluster: EmbeddedCluster,
) -> None:
    c = lab_cluster  # propagation_delay 0.5 s, istiod debounce 0.1 s
    for name in ("configmap.yaml", "service.yaml", "deployment.yaml", *ISTIO):
        await c.apply(manifest(name))
    await c.apply(manifest("istio/virtualservice.yaml"))
    await c.wait_rollout(APP, timeout=30)
    await c.config_settled()
    victim = (await c.pods())[0].name
    await c.delete(f"pod/{victim}")
    removed = await eventually(
        lambda: [
            e
            for e in c.events()
            if e.kind == EventKind.ENDPOINT_REMOVED and e.obj == f"pod/{victim}"
        ],
        5,
        message="endpoint removed",
    )
    t0 = removed[0].t
    # kube-proxy still routes to the terminating pod until the delay has passed
    rows = (await c.proxy_config("endpoints", f"kube-proxy-{APP}")).rows
    assert any(r.get("POD") == victim or victim in str(r) for r in rows), rows

    def pushed(proxy: str) -> list:
        return [
            e for e in c.events(since=t0)
            if e.kind == EventKind.CONFIG_PUSHED and e.obj == proxy
            and victim in e.data.get("removed", [])
        ]  # fmt: skip

    kube = (await eventually(lambda: pushed(f"proxy/kube-proxy-{APP}"), 5, message="kube-proxy"))[0]
    gateway = (await eventually(lambda: pushed("proxy/gateway"), 5, message="gateway"))[0]
    assert 0.45 <= kube.t - t0 <= 0.5 + 1.0, kube.t - t0  # never early; late only by load
    assert 0.09 <= gateway.t - t0 <= 0.1 + 1.0, gateway.t - t0
    rows = (await c.proxy_config("endpoints", f"kube-proxy-{APP}")).rows
    assert not any(victim in str(r) for r in rows)


async def test_weights_move_traffic_between_subsets(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    docs = ["configmap.yaml", "service.yaml", "deployment-v1.yaml", "deployment-v2.yaml", *ISTIO]
    for name in docs:
        await c.apply(manifest(name))
    await c.apply(manifest("istio/virtualservice-v1-v2.yaml"))
    await c.wait_rollout(f"{APP}-v1", timeout=30)
    await c.wait_rollout(f"{APP}-v2", timeout=30)
    await c.config_settled()
    t0 = time.time()
    await c.set_weights(APP, {"version-v1": 0, "version-v2": 100})
    await c.config_settled()
    push = [
        e
        for e in c.events(since=t0)
        if e.kind == EventKind.CONFIG_PUSHED and e.obj == "proxy/gateway"
    ]
    changed = [e for e in c.events(since=t0) if e.kind == EventKind.WEIGHTS_CHANGED]
    assert changed and changed[0].data["shares"] == {"version-v1": 0.0, "version-v2": 1.0}
    assert push and 0.09 <= push[0].t - changed[0].t <= 0.1 + 1.0
    assert await _versions(c.gateway_url() + "/k8s/demo", 40) == {"200 v2": 40}
    rows = (await c.proxy_config("routes")).rows
    assert "version-v2" in str(rows) and "version-v1" not in str(rows)


async def test_exit_on_zero_active_connections_lets_a_long_task_finish() -> None:
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    container(doc)["lifecycle"]["preStop"]["sleep"]["seconds"] = 30
    # a classic sidecar (SIGTERM with the app): pilot-agent's exit-on-zero drain is what saves it
    async with EmbeddedCluster(exit_on_zero_active_connections=True, sidecar_mode="classic") as c:
        for item in ("namespace.yaml", "configmap.yaml", "service.yaml", *ISTIO):
            await c.apply(manifest(item))
        await c.apply([doc, manifest("istio/virtualservice.yaml")])
        await c.wait_rollout(APP, timeout=60)
        pod = (await c.pods())[0]
        assert pod.sidecar and pod.extra["sidecar_pid"]
        await c.config_settled()
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            task = asyncio.create_task(client.get(c.gateway_url() + "/k8s/longTask?seconds=7"))
            await eventually(lambda: _inflight(c), 5, message="the long task reached the pod")
            t0 = time.monotonic()
            await c.delete(f"pod/{pod.name}")
            response = await task
        assert response.status_code == 200, response.headers
        exited = await eventually(
            lambda: [e for e in c.events() if e.kind == EventKind.SIDECAR_EXITED],
            15,
            message="exit",
        )
        assert exited[0].data["requests_cut"] == 0
        assert time.monotonic() - t0 >= 5  # MINIMUM_DRAIN_DURATION, then zero connections


async def _inflight(c: EmbeddedCluster) -> bool:
    stats = await c.proxy_stats("gateway", "upstream_rq_active$")
    return sum(int(v) for v in stats.values()) > 0


async def test_a_crashed_sidecar_is_restarted_and_events_stream() -> None:
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = 1
    async with EmbeddedCluster(sidecar_injection=True) as c:
        stream = c.subscribe()
        await c.apply([manifest("configmap.yaml"), doc])
        await c.wait_rollout(APP, timeout=60)
        pod = (await c.pods())[0]
        old_pid = pod.extra["sidecar_pid"]
        os.kill(old_pid, signal.SIGKILL)
        await eventually(
            lambda: (p := c.pod(pod.name).info()).ready and p.extra["sidecar_pid"] != old_pid,
            15,
            message="sidecar restarted and pod ready again",
        )
        seen = []
        async for event in stream:
            seen.append(event.kind)
            if event.kind == EventKind.PROXY_RESTARTED:
                break
        assert EventKind.POD_CREATED in seen and EventKind.PROXY_CRASHED in seen


async def test_a_crashed_gateway_is_restarted_with_its_config(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    for name in ("configmap.yaml", "service.yaml", "deployment.yaml", *ISTIO):
        await c.apply(manifest(name))
    await c.apply(manifest("istio/virtualservice.yaml"))
    await c.wait_rollout(APP, timeout=30)
    await c.config_settled()
    assert await _versions(c.gateway_url() + "/k8s/demo", 5) == {"200 v1": 5}
    os.kill(c.processes()["gateway"], signal.SIGKILL)
    await eventually(
        lambda: [e for e in c.events() if e.kind == EventKind.PROXY_RESTARTED],
        20,
        message="restart",
    )
    assert await _versions(c.gateway_url() + "/k8s/demo", 5) == {"200 v1": 5}
