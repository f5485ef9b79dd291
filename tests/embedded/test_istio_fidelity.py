"""Istio fidelity of the embedded backend: a route to an undefined subset is applied (IST0101
warning) and the gateway Envoy really answers 503 NC; the original demo's v1alpha3 files apply
with a deprecation warning; config_settled raises on a rejected push and times out with the
shared ConfigNotSettledError."""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx
import pytest
from cluster_testlib import APP, ROOT, manifest

from lab_app.cluster import connect
from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind
from lab_app.errors import (
    ConfigError,
    ConfigNotSettledError,
    ConfigRejectedError,
    LabError,
    ManifestError,
)
from lab_app.manifests import ManifestWarning

ORIGINAL = ROOT / "tests" / "manifests" / "data" / "original-demo"
BASE = [
    "namespace.yaml",
    "configmap.yaml",
    "service.yaml",
    "deployment-v1.yaml",
    "istio/destinationrule.yaml",
    "istio/gateway.yaml",
]


def vs_to(subset: str) -> dict[str, Any]:
    vs = manifest("istio/virtualservice.yaml")
    vs["spec"]["http"][0]["route"][0]["destination"]["subset"] = subset
    return vs


def warnings_of(c: EmbeddedCluster, since: float, obj: str | None = None) -> list:
    return [
        e
        for e in c.events(since=since)
        if e.kind == EventKind.CONFIG_WARNING and (obj is None or e.obj == obj)
    ]


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(url)


async def test_route_to_an_undefined_subset_answers_503_nc(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    for name in BASE:
        await c.apply(manifest(name))
    await c.wait_rollout(f"{APP}-v1", timeout=60)
    t0 = time.time()
    assert await c.apply(vs_to("version-v4")) == [f"virtualservice/{APP}"]  # accepted, like Istio
    (warning,) = warnings_of(c, t0, f"virtualservice/{APP}")
    assert warning.data["code"] == "IST0101"
    assert (warning.data["subset"], warning.data["host"]) == ("version-v4", APP)
    assert warning.data["analyze"] == (
        f'Referenced host+subset in destinationrule not found: "{APP}+version-v4"'
    )
    assert APP in warning.message and "version-v4" in warning.message
    await c.config_settled()  # the push was accepted: Envoy takes a route to a missing cluster
    # istiod's cluster name for the subset, which no cluster carries
    routes = str((await c.proxy_config("routes")).rows)
    assert f"outbound|8080|version-v4|{APP}.zdlab.svc.cluster.local" in routes
    assert "version-v4" not in str((await c.proxy_config("clusters")).rows)
    before = sum((await c.proxy_stats("gateway", "no_cluster")).values())
    for _ in range(3):
        r = await get(c.gateway_url() + "/k8s/demo")
        assert r.status_code == 503
        assert r.headers.get("x-envoy-flags") == "NC"
    stats = await c.proxy_stats("gateway", "no_cluster")
    assert sum(stats.values()) - before == 3, stats

    # the subset defined (make before break, late): a cluster now, but no v4 pod: 503 UH
    dr = manifest("istio/destinationrule.yaml")
    dr["spec"]["subsets"].append({"name": "version-v4", "labels": {"version": "v4"}})
    t1 = time.time()
    await c.apply(dr)
    assert warnings_of(c, t1) == []
    await c.config_settled()
    r = await get(c.gateway_url() + "/k8s/demo")
    assert (r.status_code, r.headers.get("x-envoy-flags")) == (503, "UH")
    # back to an existing subset with pods: served
    await c.apply(vs_to("version-v1"))
    await c.config_settled()
    r = await get(c.gateway_url() + "/k8s/demo")
    assert r.status_code == 200 and r.headers.get("x-app-version") == "v1"
    # deleting the DestinationRule is accepted too (Istio does), with the IST0101 warning
    t2 = time.time()
    await c.delete(f"destinationrule/{APP}")
    assert [w.data["subset"] for w in warnings_of(c, t2)] == ["version-v1"]
    await c.config_settled()
    r = await get(c.gateway_url() + "/k8s/demo")
    assert (r.status_code, r.headers.get("x-envoy-flags")) == (503, "NC")


async def test_strict_routes_refuses_and_settle_times_out_like_kube() -> None:
    with pytest.raises(ConfigError, match="strict_routes"):
        await connect("embedded", strict_routes="yes")
    c = await connect("embedded", strict_routes=True, sidecar_injection=False, istiod_debounce=3.0)
    try:
        assert isinstance(c, EmbeddedCluster) and c.strict_routes
        for name in ("service.yaml", "istio/destinationrule.yaml", "istio/gateway.yaml"):
            await c.apply(manifest(name))
        # istiod's debounce (3 s here) is still running: not settled within 0.2 s
        with pytest.raises(TimeoutError) as timeout:
            await c.config_settled(timeout=0.2)
        assert isinstance(timeout.value, ConfigNotSettledError)
        assert isinstance(timeout.value, LabError) and "0.2s" in str(timeout.value)
        t0 = time.time()
        with pytest.raises(ManifestError, match="make before break") as err:
            await c.apply(vs_to("version-v4"))
        assert err.value.field == "spec.http[0].route[0].destination.subset"
        assert "version-v4" in str(err.value)
        assert warnings_of(c, t0) == []
        # it was never stored: skipped, as `kubectl delete --ignore-not-found` (tests/contract)
        assert await c.delete(f"virtualservice/{APP}") == []
        await c.apply(vs_to("version-v1"))
        with pytest.raises(ManifestError):
            await c.delete(f"destinationrule/{APP}")  # break before make
        await c.config_settled(timeout=30)
    finally:
        await c.close()


async def test_the_original_v1alpha3_demo_applies_with_warnings(
    lab_cluster: EmbeddedCluster,
) -> None:
    c = lab_cluster
    await c.apply(manifest("service.yaml"))
    t0 = time.time()
    with pytest.warns(ManifestWarning, match="use networking.istio.io/v1"):
        refs = await c.apply(ORIGINAL)
    assert sorted(refs) == [
        f"destinationrule/{APP}",
        "gateway/demo-gateway",
        f"virtualservice/{APP}",
    ]
    deprecated = [w for w in warnings_of(c, t0) if w.data.get("reason") == "DeprecatedAPIVersion"]
    assert sorted(w.obj for w in deprecated) == sorted(refs)
    for w in deprecated:
        assert w.data["apiVersion"] == "networking.istio.io/v1alpha3"
        assert w.data["use"] == "networking.istio.io/v1"
        assert "use networking.istio.io/v1" in w.message
    await c.config_settled()
    rows = (await c.proxy_config("routes")).rows
    (row,) = [r for r in rows if r.get("weights")]
    assert sorted(row["weights"].values()) == [10, 90], row
    assert "version-v1" in str(row) and "version-v2" in str(row)


async def test_config_settled_raises_on_a_rejected_push(lab_cluster: EmbeddedCluster) -> None:
    c = lab_cluster
    for name in ("service.yaml", "istio/destinationrule.yaml", "istio/gateway.yaml"):
        await c.apply(manifest(name))
    await c.apply(manifest("istio/virtualservice.yaml"))
    await c.config_settled()
    assert c.config_rejections() == {}
    gateway = c._gateway
    assert gateway is not None
    good = gateway._build

    def broken() -> Any:  # what a buggy istiod would send: Envoy NACKs the cluster
        snapshot, info = good()
        snapshot = copy.deepcopy(snapshot)
        snapshot.clusters[0]["lb_policy"] = "NOT_A_POLICY"
        return snapshot, info

    gateway._build = broken
    t0 = time.time()
    await c.apply(manifest("istio/destinationrule.yaml"))  # any Istio change pushes
    with pytest.raises(ConfigRejectedError) as info:
        await c.config_settled()
    message = str(info.value)
    assert "proxy/gateway" in message and "NOT_A_POLICY" in message, message
    assert set(info.value.rejections) == {"proxy/gateway"}
    rejected = [e for e in c.events(since=t0) if e.kind == EventKind.CONFIG_REJECTED]
    assert rejected and rejected[-1].obj == "proxy/gateway"
    # the old config still serves; the next push is accepted and config_settled passes again
    gateway._build = good
    gateway.trigger("config")
    await c.config_settled()
    assert c.config_rejections() == {}
