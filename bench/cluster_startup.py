"""Figures of the embedded cluster: start-up, weight-change latency, memory.

Not a timed test: prints what this machine measures.

1. Cluster up: ``EmbeddedCluster.start()`` (reaper + gateway Envoy) plus the hardened
   Deployment's 2 pods ready (``apply`` + ``wait_rollout``), with the manifest validator
   cold (first use in the process) and warm. Target: <= 3 s.
2. Weight change visible at the gateway: ``set_weights`` v1 0 / v2 100 (and back), then
   requests in a tight loop until every answer comes from the new version. Reported as the
   time after the configured istiod debounce (100 ms). Target: <= 50 ms.
3. Memory: RSS / USS / PSS of the gateway and 4 pods with their sidecars (psutil).

Usage: python bench/cluster_startup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import psutil

from lab_app.cluster.embedded import EmbeddedCluster

APP = "zero-downtime-rollingupdate"
MANIFESTS = "manifests/"


async def cluster_up() -> list[tuple[str, float, float]]:
    rows = []
    for label in ("cold validator", "warm validator"):
        t0 = time.perf_counter()
        cluster = await EmbeddedCluster.start(sidecar_injection=False)
        started = time.perf_counter() - t0
        try:
            for name in ("configmap.yaml", "service.yaml", "deployment.yaml"):
                await cluster.apply(MANIFESTS + name)
            await cluster.wait_rollout(APP, timeout=30)
            ready = time.perf_counter() - t0
        finally:
            await cluster.close()
        rows.append((label, started, ready))
    return rows


async def weight_latency(rounds: int) -> tuple[list[float], list[float], float]:
    """(visible after debounce, ms), (push lag, ms), debounce (s)."""
    visible, lags = [], []
    async with EmbeddedCluster(sidecar_injection=False) as c:
        for name in (
            "configmap.yaml", "service.yaml", "deployment-v1.yaml", "deployment-v2.yaml",
            "istio/destinationrule.yaml", "istio/gateway.yaml", "istio/virtualservice-v1-v2.yaml",
        ):  # fmt: skip
            await c.apply(MANIFESTS + name)
        await c.wait_rollout(f"{APP}-v1")
        await c.wait_rollout(f"{APP}-v2")
        await c.config_settled()
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            url = c.gateway_url() + "/k8s/demo"
            for i in range(rounds):
                target = "v2" if i % 2 == 0 else "v1"
                weights = {"version-v1": 0, "version-v2": 100}
                if target == "v1":
                    weights = {"version-v1": 100, "version-v2": 0}
                t0 = time.perf_counter()
                wall0 = time.time()
                await c.set_weights(APP, weights)
                streak = 0
                first_all_new = None
                while streak < 20:  # 20 answers in a row from the new version
                    r = await client.get(url)
                    if r.headers.get("x-app-version") == target:
                        if streak == 0:
                            first_all_new = time.perf_counter()
                        streak += 1
                    else:
                        streak = 0
                assert first_all_new is not None
                visible.append((first_all_new - t0 - c.istiod_debounce) * 1000)
                pushed = [
                    e for e in c.events(since=wall0)
                    if e.kind == "ConfigPushed" and e.obj == "proxy/gateway"
                ]  # fmt: skip
                lags.append(pushed[0].data["lag_ms"] if pushed else float("nan"))
                await c.config_settled()
        return visible, lags, c.istiod_debounce


async def memory() -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    async with EmbeddedCluster() as c:
        for name in ("namespace.yaml", "configmap.yaml", "service.yaml", "deployment-v1.yaml",
                     "deployment-v2.yaml", "istio/destinationrule.yaml", "istio/gateway.yaml",
                     "istio/virtualservice-v1-v2.yaml"):  # fmt: skip
            await c.apply(MANIFESTS + name)
        await c.wait_rollout(f"{APP}-v1")
        await c.wait_rollout(f"{APP}-v2")
        await c.config_settled()
        for name, pid in c.processes().items():
            if name.startswith("kube-proxy") or name == "reaper":
                continue
            info = psutil.Process(pid).memory_full_info()
            out[name] = (info.rss / 2**20, info.uss / 2**20, getattr(info, "pss", 0) / 2**20)
    return out


async def main(rounds: int) -> None:
    print("== cluster up (gateway + 2 ready pods of deployment.yaml)")
    for label, started, ready in await cluster_up():
        print(f"  {label:15s}: start() {started:.2f} s, 2 pods ready {ready:.2f} s")
    visible, lags, debounce = await weight_latency(rounds)
    print(f"== weight change visible at the gateway ({rounds} changes, debounce {debounce:g} s)")
    print(
        f"  after the debounce: median {statistics.median(visible):.1f} ms, "
        f"max {max(visible):.1f} ms; istiod push confirmed {statistics.median(lags):.0f} ms "
        f"(median) after set_weights"
    )
    print("== memory: gateway + 4 pods with sidecars (MiB)")
    mem = await memory()
    print(f"  {'process':58s} {'RSS':>7s} {'USS':>7s} {'PSS':>7s}")
    for name, (rss, uss, pss) in sorted(mem.items()):
        print(f"  {name:58s} {rss:7.1f} {uss:7.1f} {pss:7.1f}")
    rss, uss, pss = (sum(v[i] for v in mem.values()) for i in range(3))
    label = f"total ({len(mem)} processes)"
    print(f"  {label:58s} {rss:7.1f} {uss:7.1f} {pss:7.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    asyncio.run(main(parser.parse_args().rounds))
