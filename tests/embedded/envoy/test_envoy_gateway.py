"""The gateway end to end: real Envoy, real upstreams, weights moved by file-based xDS."""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import time
from collections import Counter

import httpx
import pytest
from envoy_testlib import (
    HOST,
    demo_snapshot,
    destination_rule,
    gateway,
    needs_envoy,
    service,
    virtual_service,
    wait_until,
)

from lab_app.cluster.embedded.envoy import Endpoint, gateway_snapshot

pytestmark = needs_envoy


async def setup_gateway(envoys, upstreams, weights, pods_per_version=2, **kw):
    pods = []
    for version in ("v1", "v2"):
        for _ in range(pods_per_version):
            pods.append(await upstreams(version))
    eps = [
        Endpoint("127.0.0.1", p.port, {"app": "zdr", "version": p.version}, p.name) for p in pods
    ]

    def snap(w, endpoints=None, **extra):
        return demo_snapshot(w, eps if endpoints is None else endpoints, http={**kw, **extra})

    gw = envoys("gateway")
    await gw.start(initial=snap(weights))
    port = (await gw.admin.listener_addresses())["0.0.0.0_80"][1]
    return gw, snap, f"http://127.0.0.1:{port}", pods, eps


async def sample(client: httpx.AsyncClient, n: int, concurrency: int = 4) -> Counter:
    """Send n requests (concurrency at a time); count (status, version)."""
    counts: Counter = Counter()
    remaining = n

    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            r = await client.get("/k8s/demo")
            counts[(r.status_code, r.headers.get("x-app-version"))] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


async def test_weights_90_10_then_50_50_then_0_100_with_no_errors(envoys, upstreams, report):
    gw, snap, url, _, _ = await setup_gateway(envoys, upstreams, {"v1": 100, "v2": 0})
    report(f"gateway Envoy start-to-ready {gw.start_seconds * 1000:.0f} ms")
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        stop = asyncio.Event()
        background: Counter = Counter()

        async def steady_load():  # keeps requests in flight while the pushes happen
            while not stop.is_set():
                r = await client.get("/k8s/demo")
                background[r.status_code] += 1

        load = [asyncio.create_task(steady_load()) for _ in range(2)]
        await wait_until(lambda: background.total() > 20)
        try:
            # shares are random per request: n is chosen so 5 points is >3 standard deviations
            for (w1, w2), n in (((90, 10), 600), ((50, 50), 1200), ((0, 100), 300)):
                result = await gw.push(snap({"v1": w1, "v2": w2}))
                assert result.accepted, result.details
                if w1 == 0:  # workers get the new routes a moment after the main thread
                    await wait_until(lambda: sample_is_v2(client))
                counts = await sample(client, n)
                assert sum(c for (status, _), c in counts.items() if status != 200) == 0, counts
                share_v1 = 100 * counts[(200, "v1")] / n
                report(f"weights {w1}/{w2}: measured v1 share {share_v1:.1f}% over {n} requests")
                assert abs(share_v1 - w1) <= 5, counts
                if w1 == 0:
                    assert counts[(200, "v1")] == 0
        finally:
            stop.set()
            await asyncio.gather(*load)
    assert set(background) == {200}, background
    report(f"background load during the weight changes: {background.total()} requests, all 200")


async def sample_is_v2(client):
    return (await client.get("/k8s/demo")).headers.get("x-app-version") == "v2"


async def test_push_to_visible_latency(envoys, upstreams, report):
    gw, snap, url, _, _ = await setup_gateway(
        envoys, upstreams, {"v1": 100, "v2": 0}, pods_per_version=1
    )
    visible_ms, took_ms = [], []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for i in range(6):
            target = "v2" if i % 2 == 0 else "v1"
            weights = {"v1": 0, "v2": 100} if target == "v2" else {"v1": 100, "v2": 0}
            t0 = time.perf_counter()
            result = await gw.push(snap(weights))
            assert result.accepted
            took_ms.append(result.took_ms)
            while (await client.get("/k8s/demo")).headers.get("x-app-version") != target:
                assert time.perf_counter() - t0 < 5, "new weights never became visible"
            visible_ms.append((time.perf_counter() - t0) * 1000)
    took, visible = statistics.median(took_ms), statistics.median(visible_ms)
    report(
        f"push confirmed (RDS) median {took:.1f} ms, max {max(took_ms):.1f} ms; push start -> "
        f"first response from the new subset median {visible:.1f} ms, max {max(visible_ms):.1f} ms"
    )
    assert max(visible_ms) < 2000


async def test_rejected_push_is_reported_and_old_config_stays(envoys, upstreams):
    gw, snap, url, _, _ = await setup_gateway(envoys, upstreams, {"v1": 0, "v2": 100})
    good = snap({"v1": 0, "v2": 100})
    rds_file = gw.xds.rds_path("http.80")
    before = rds_file.read_text()
    bad = copy.deepcopy(good)
    bad.routes[0]["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]["clusters"] = [
        {"name": f"outbound|8080|version-v1|{HOST}", "weight": 0},
        {"name": f"outbound|8080|version-v2|{HOST}", "weight": 0},
    ]
    result = await gw.push(bad)
    assert not result.accepted
    assert any("rds.http.80" in d for d in result.details), result.details
    assert any("weight" in d.lower() for d in result.details), result.details  # Envoy's reason
    assert rds_file.read_text() == before  # the file is back to what Envoy runs
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        counts = await sample(client, 50)
    assert counts == Counter({(200, "v2"): 50})

    # a broken cluster is rejected by CDS; the clusters Envoy runs stay
    bad_cluster = copy.deepcopy(snap({"v1": 100, "v2": 0}))
    bad_cluster.clusters[1]["lb_policy"] = "NOT_A_POLICY"
    result = await gw.push(bad_cluster)
    assert not result.accepted
    assert any("cluster_manager.cds" in d for d in result.details), result.details
    json.loads(gw.xds.cds_path.read_text())  # still a complete, valid file
    assert "NOT_A_POLICY" not in gw.xds.cds_path.read_text()

    # and the pusher still works afterwards
    assert (await gw.push(snap({"v1": 100, "v2": 0}))).accepted
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await wait_until(lambda: sample_is_v1(client))
        counts = await sample(client, 50)
    assert counts == Counter({(200, "v1"): 50})


async def sample_is_v1(client):
    return (await client.get("/k8s/demo")).headers.get("x-app-version") == "v1"


async def test_subsets_added_and_removed_at_runtime(envoys, upstreams):
    """Make before break: a new subset's cluster exists before routes use it, and goes after."""
    gw, _, url, _, eps = await setup_gateway(envoys, upstreams, {"v1": 100})
    v3 = await upstreams("v3")
    eps3 = [*eps, Endpoint("127.0.0.1", v3.port, {"version": "v3"}, v3.name)]
    s = gateway_snapshot(
        gateway=gateway(),
        virtual_services=[virtual_service({"v1": 50, "v3": 50})],
        destination_rules=[destination_rule("v1", "v3")],  # v2 removed, v3 is new
        services=[service()],
        endpoints={"zero-downtime-rollingupdate": eps3},
        listen_port=0,
    )
    result = await gw.push(s)
    assert result.accepted, result.details
    clusters = (await gw.proxy_config("clusters")).rows
    assert {r["SUBSET"] for r in clusters} == {"-", "version-v1", "version-v3"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        counts = await sample(client, 200)
    assert counts[(200, "v3")] > 50 and counts[(200, "v1")] > 50
    assert sum(counts.values()) == counts[(200, "v3")] + counts[(200, "v1")]
    assert not gw.xds.eds_path(f"outbound|8080|version-v2|{HOST}").exists()


async def test_proxy_config_shows_weights_and_istio_cluster_names(envoys, upstreams):
    gw, *_ = await setup_gateway(envoys, upstreams, {"v1": 90, "v2": 10})
    routes = await gw.proxy_config("routes")
    assert len(routes.rows) == 1
    row = routes.rows[0]
    assert row["NAME"] == "http.80"
    assert row["VIRTUAL SERVICE"] == "zero-downtime-rollingupdate.zdlab"
    assert row["weights"] == {
        f"outbound|8080|version-v1|{HOST}": 90,
        f"outbound|8080|version-v2|{HOST}": 10,
    }
    table = routes.table()
    assert f"outbound|8080|version-v1|{HOST} 90 (90%)" in table
    assert table.splitlines()[0].split()[:3] == ["NAME", "VHOST", "NAME"]

    clusters = await gw.proxy_config("clusters")
    names = {r["name"] for r in clusters.rows}
    assert f"outbound|8080|version-v1|{HOST}" in names
    assert f"outbound|8080|version-v2|{HOST}" in names
    assert any(
        r["SUBSET"] == "version-v1" and r["DESTINATION RULE"] == "zero-downtime-rollingupdate.zdlab"
        for r in clusters.rows
    )

    endpoints = await gw.proxy_config("endpoints")
    v1_rows = [r for r in endpoints.rows if r["CLUSTER"] == f"outbound|8080|version-v1|{HOST}"]
    assert len(v1_rows) == 2 and all(r["STATUS"] == "HEALTHY" for r in v1_rows)
    assert all(r["POD"].startswith("pod-v1") for r in v1_rows)

    listeners = await gw.proxy_config("listeners")
    assert listeners.rows[0]["DESTINATION"] == "Route: http.80"
    bound = (await gw.admin.listener_addresses())["0.0.0.0_80"][1]
    assert listeners.rows[0]["PORT"] == bound != 0  # the real port, not the configured 0
    assert "Route: http.80" in str(listeners)


@pytest.mark.parametrize("status", [503])
async def test_app_errors_pass_through_with_empty_flags(envoys, upstreams, status):
    _, _, url, *_ = await setup_gateway(envoys, upstreams, {"v1": 100}, retries={"attempts": 0})
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get(f"/status/{status}")
    assert r.status_code == status
    assert r.headers["x-app-version"] == "v1"
    assert r.headers["x-envoy-flags"] == "-"  # the app answered: no Envoy flag
