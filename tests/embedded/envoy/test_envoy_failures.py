"""What a client sees when the data plane has nowhere good to send a request (real Envoy)."""

from __future__ import annotations

import httpx
from envoy_testlib import (
    HOST,
    demo_snapshot,
    needs_envoy,
    wait_until,
)

from lab_app.cluster.embedded.envoy import Endpoint

pytestmark = needs_envoy


def flags(r: httpx.Response) -> set[str]:
    return set(r.headers.get("x-envoy-flags", "").split(","))


async def start(envoys, eps, weights, **kw):
    def snap(endpoints, w=weights, missing_subset="error"):
        return demo_snapshot(
            w, endpoints, subsets=("v1", "v2"), http=kw, missing_subset=missing_subset
        )

    gw = envoys("gateway")
    await gw.start(initial=snap(eps))
    port = (await gw.admin.listener_addresses())["0.0.0.0_80"][1]
    return gw, snap, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)


def v1_endpoints(*pods) -> list[Endpoint]:
    return [Endpoint("127.0.0.1", p.port, {"version": "v1"}, p.name) for p in pods]


async def start_one_pod(envoys, upstreams):
    """One v1 pod, all the traffic to it: (pod, its endpoints, gateway, snap, client)."""
    pod = await upstreams("v1")
    eps = v1_endpoints(pod)
    return pod, eps, *(await start(envoys, eps, {"v1": 100}))


async def test_endpoint_removed_gives_503_uh(envoys, upstreams):
    pod, _, gw, snap, client = await start_one_pod(envoys, upstreams)
    async with client:
        assert (await client.get("/k8s/demo")).status_code == 200
        result = await gw.push(snap([]))  # the endpoint controller removed the only v1 pod
        assert result.accepted, result.details
        assert result.written == [
            f"cluster.outbound|8080||{HOST}",
            f"cluster.outbound|8080|version-v1|{HOST}",
        ]
        await wait_until(lambda: _status_is(client, 503))
        r = await client.get("/k8s/demo")
        assert r.status_code == 503
        assert "UH" in flags(r)
        assert "no healthy upstream" in r.text
        assert pod.requests >= 1


async def test_stopped_upstream_gives_503_uf(envoys, upstreams):
    # the endpoint stays in EDS (propagation lag) while the process is gone
    pod, _, gw, _, client = await start_one_pod(envoys, upstreams)
    async with client:
        assert (await client.get("/k8s/demo")).status_code == 200
        await pod.stop()
        r = await client.get("/k8s/demo")
        assert r.status_code == 503
        assert "UF" in flags(r), r.headers
        assert "upstream connect error" in r.text
    # Istio's default retries were tried: 2 retries on connect-failure, so 3 attempts
    assert await gw.admin.counter(f"cluster.outbound|8080|version-v1|{HOST}.upstream_rq_retry") >= 2
    await wait_until(lambda: " 503 " in gw.access_log_path.read_text(), timeout=5)
    line = [ln for ln in gw.access_log_path.read_text().splitlines() if " 503 " in ln][-1]
    assert "URX,UF" in line or "UF,URX" in line, line  # retries exhausted, then the connect failure
    assert line.split()[6] == "3", line  # %UPSTREAM_REQUEST_ATTEMPT_COUNT%


async def test_retry_moves_to_another_pod_when_one_is_gone(envoys, upstreams):
    """previous_hosts + Istio's max_retries: a dead endpoint costs no error when another exists."""
    live, dead = await upstreams("v1"), await upstreams("v1")
    _, _, client = await start(envoys, v1_endpoints(live, dead), {"v1": 100})
    await dead.stop()
    async with client:
        statuses = [(await client.get("/k8s/demo")).status_code for _ in range(40)]
    assert statuses == [200] * 40


async def test_subset_missing_from_destination_rule_gives_503_nc(envoys, upstreams):
    _, eps, gw, snap, client = await start_one_pod(envoys, upstreams)
    async with client:
        result = await gw.push(snap(eps, {"v3": 100}, missing_subset="blackhole"))
        assert result.accepted
        await wait_until(lambda: _status_is(client, 503))
        r = await client.get("/k8s/demo")
        assert "NC" in flags(r), r.headers


async def _status_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/k8s/demo")).status_code == status


async def test_upstream_idle_timeout_closes_idle_connections(envoys, upstreams):
    """The proxy, not the app, closes idle keep-alive connections (no 503 UC race)."""
    eps = v1_endpoints(await upstreams("v1"))
    gw = envoys("gateway")
    await gw.start(
        initial=demo_snapshot({"v1": 100}, eps, subsets=("v1",), upstream_idle_timeout_s=0.3)
    )
    port = (await gw.admin.listener_addresses())["0.0.0.0_80"][1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/k8s/demo")).status_code == 200
    stat = f"cluster.outbound|8080|version-v1|{HOST}.upstream_cx_idle_timeout"
    took = await wait_until(lambda: _counter_is_one(gw, stat), timeout=5)
    assert took >= 0.2  # not before the timeout


async def _counter_is_one(gw, stat: str) -> bool:
    return await gw.admin.counter(stat) == 1
