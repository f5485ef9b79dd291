"""The kube-proxy stand-in (TCP, per connection) and the inbound sidecar, with real Envoy."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from envoy_testlib import (
    demo_snapshot,
    needs_envoy,
    service,
    wait_until,
)

from lab_app.cluster.embedded.envoy import (
    Endpoint,
    service_proxy_snapshot,
    sidecar_snapshot,
)

pytestmark = needs_envoy


async def one_shot(port: int) -> str:
    """One request on a fresh connection (Connection: close); returns the answering pod."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /k8s/demo HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("x-pod:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(head)


async def test_service_proxy_balances_connections_and_keeps_open_ones(envoys, upstreams):
    a, b = await upstreams("v1", "pod-a"), await upstreams("v1", "pod-b")
    eps = [Endpoint("127.0.0.1", p.port, {"version": "v1"}, p.name) for p in (a, b)]
    proxy = envoys("kube-proxy")
    await proxy.start(initial=service_proxy_snapshot(service(), eps, listen_port=0))
    port = (await proxy.admin.listener_addresses())["kube-proxy_8080"][1]

    pods = Counter([await one_shot(port) for _ in range(60)])
    assert set(pods) == {"pod-a", "pod-b"}
    assert min(pods.values()) >= 10, pods  # random per connection (P(<10 of 60) ~ 1e-8)

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=5
    ) as client:
        first = (await client.get("/k8s/demo")).headers["x-pod"]
        same = {(await client.get("/k8s/demo")).headers["x-pod"] for _ in range(20)}
        assert same == {first}  # one connection, one pod: balancing is per connection

        # the endpoint controller removes that pod: new connections avoid it ...
        other = [e for e in eps if e.pod != first]
        result = await proxy.push(service_proxy_snapshot(service(), other, listen_port=0))
        assert result.accepted, result.details
        await wait_until(lambda: _one_shot_is(port, other[0].pod))
        assert {await one_shot(port) for _ in range(20)} == {other[0].pod}
        # ... but the open connection still reaches it, like a conntrack entry
        assert (await client.get("/k8s/demo")).headers["x-pod"] == first


async def _one_shot_is(port: int, pod: str) -> bool:
    return all([await one_shot(port) == pod for _ in range(5)])


async def test_sidecar_forwards_to_the_app_and_drains(envoys, upstreams):
    app = await upstreams("v1", "pod-v1-a")
    sidecar = envoys("pod-v1-a-sidecar", drain_time_s=1)
    await sidecar.start(initial=sidecar_snapshot(0, app.port, pod=app.name))
    pod_port = (await sidecar.admin.listener_addresses())["virtualInbound"][1]

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pod_port}", timeout=5) as client:
        r = await client.get("/k8s/demo")
        assert r.status_code == 200
        assert r.headers["x-app-version"] == "v1"
        assert r.headers["server"] == "istio-envoy"  # it went through Envoy
        assert "x-envoy-upstream-service-time" in r.headers
        cx, rq = await sidecar.active()
        assert cx >= 1 and rq == 0  # the client's keep-alive connection, idle

        # what pilot-agent does at SIGTERM; responses now ask clients to close
        await sidecar.drain_listeners(graceful=True)
        r = await client.get("/k8s/demo")
        assert r.status_code == 200
        assert r.headers.get("connection") == "close"
        await wait_until(lambda: _zero_connections(sidecar))
    # after the drain time the listener is closed: new connections are refused
    await wait_until(lambda: _refused(pod_port), timeout=10)


async def _zero_connections(proxy) -> bool:
    return (await proxy.active())[0] == 0


async def _refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_gateway_to_sidecar_to_app(envoys, upstreams):
    app = await upstreams("v2", "pod-v2-a")
    sidecar = envoys("pod-v2-a-sidecar")
    await sidecar.start(initial=sidecar_snapshot(0, app.port, pod=app.name))
    pod_port = (await sidecar.admin.listener_addresses())["virtualInbound"][1]
    gw = envoys("gateway")
    await gw.start(
        initial=demo_snapshot(
            {"v2": 100},
            [Endpoint("127.0.0.1", pod_port, {"version": "v2"}, app.name)],
            subsets=("v2",),
        )
    )
    port = (await gw.admin.listener_addresses())["0.0.0.0_80"][1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        r = await client.get("/k8s/demo")
    assert r.status_code == 200 and r.headers["x-app-version"] == "v2"
    assert await sidecar.admin.counter("http.inbound_0.0.0.0_8080.downstream_rq_2xx") == 1
    assert app.requests == 1
