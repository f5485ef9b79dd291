"""Rolling updates under load: naive, hardened, and behind Istio sidecars.

Each experiment deploys v1, starts load, runs ``set_image`` to v2 (a rolling update) and
measures what the clients saw. Manifests are the repo's ``manifests/``; the few in-memory
overrides are listed in each docstring and recorded in the result's ``params``.

* ``naive-rolling-update`` -- ``deployment-naive.yaml`` (no readiness probe, no preStop,
  ``SHUTDOWN_MODE=naive``). ``via="service"``: load through ``service_url()`` (kube-proxy,
  no Istio): clients see refused/reset connections (fortio code -1). ``via="gateway"``: load
  through the ingress gateway (pods without sidecars) with ``virtualservice.yaml``: errors are
  ``503`` with Envoy flag ``UF`` (and ``UC`` for requests cut in flight).
* ``hardened-rolling-update`` -- ``deployment.yaml`` (readiness probe, ``maxUnavailable: 0``,
  preStop 5 s > the 1 s propagation delay, graceful shutdown), load through ``service_url()``:
  no error.
* ``sidecar-rolling-update`` -- ``deployment.yaml`` with Istio sidecars and the original
  demo's preStop (``sleep 30``, grace 32 s), load on ``/k8s/demo`` and ``/k8s/longTask``
  through the gateway with ``virtualservice.yaml``. What happens depends on the sidecar mode
  (``sidecar_mode``; by default the versions decide: native from Istio 1.27 on Kubernetes
  1.33+). Classic sidecars get SIGTERM with the app's preStop and drain for
  ``terminationDrainDuration`` (5 s), cutting long tasks in flight: ``503 UC`` on
  ``/k8s/longTask`` (``drain_setting`` changes the drain). Native sidecars drain at their own
  preStop and stop only after the app exited: nothing is cut. ``retries=True`` adds the
  original's retry policy
  (``attempts: 5``, ``retryOn: gateway-error,retriable-4xx,connect-failure,refused-stream``);
  it reduces the errors but does not remove them (Envoy allows 3 retries in flight per
  cluster by default, and a retry may land on another draining pod).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Literal

from lab_app.cluster import Cluster
from lab_app.cluster.events import EventKind
from lab_app.cluster.versions import check_sidecar_mode
from lab_app.errors import ConfigError
from lab_app.experiments.common import (
    APP,
    app_container,
    manifest,
    set_env,
    settle,
    wait_http_ok,
)
from lab_app.experiments.result import ExperimentResult
from lab_app.experiments.runner import LoadSpec, Session, run_session

# The original demo's retry policy (istio-virtual-service-v1-v2.yaml). perTryTimeout is raised
# above the long task (the original's 2s would time out every 10 s /k8s/longTask).
ORIGINAL_RETRIES = {
    "attempts": 5,
    "perTryTimeout": "2s",
    "retryOn": "gateway-error,retriable-4xx,connect-failure,refused-stream",
}


def _check(qps: float, duration: float, rollout_at: float | None) -> float:
    if qps <= 0:
        raise ConfigError(f"qps must be > 0, got {qps}")
    if duration < 4:
        raise ConfigError(f"duration must be at least 4 s (the rollout needs time), got {duration}")
    at = max(1.0, duration * 0.2) if rollout_at is None else rollout_at
    if not 0 <= at < duration:
        raise ConfigError(f"rollout_at must be within the run (0..{duration}), got {at}")
    return at


def _connections(qps: float, per_connection: float = 12.5) -> int:
    """Keep-alive connections for ``qps``: at most ~12 req/s each, at least 4."""
    return max(4, min(64, math.ceil(qps / per_connection)))


async def _rolling(
    s: Session,
    *,
    docs: list[dict[str, Any]],
    deployment: str,
    via: str,
    loads: list[LoadSpec],
    duration: float,
    rollout_at: float,
    rollout_timeout: float,
) -> None:
    c = s.cluster
    v2 = (await s.build_images("v1", "v2"))["v2"]
    await s.deploy(docs, [deployment], timeout=rollout_timeout)
    base = c.gateway_url() if via == "gateway" else c.service_url(APP)
    await wait_http_ok(base + "/k8s/demo", timeout=30, stopper=s.stopper)
    await s.stopper.run(settle(c))
    pods = await c.pods({"app": APP})
    if via == "service":
        # kube-proxy learns endpoints ~propagation_delay late: wait until every pod answers
        await _wait_versions(s, base, {p.name for p in pods})
    s.step("v1 ready", pods=[p.name for p in pods])
    s.start_loads(base, loads, duration)
    await s.stopper.sleep(rollout_at)
    s.step("set_image", deployment=deployment, image=v2)
    await s.stopper.run(c.set_image(deployment, v2))
    await s.stopper.run(c.wait_rollout(deployment, timeout=rollout_timeout))
    s.step("rollout complete", deployment=deployment)
    await s.wait_loads()


async def _pods(s: Session) -> list[Any]:
    try:
        return list(await s.cluster.pods({"app": APP}))
    except Exception:
        return []


async def _wait_versions(s: Session, base: str, pods: set[str], timeout: float = 15.0) -> None:
    """Wait until requests through ``base`` have reached every pod in ``pods``."""
    import httpx

    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while not pods <= seen and asyncio.get_running_loop().time() < deadline:
            s.stopper.check()
            try:
                r = await client.get(base + "/version", headers={"connection": "close"})
                if r.status_code == 200:
                    seen.add(str(r.json().get("pod", "")))
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.02)


async def run_naive_rolling_update(
    cluster: Cluster | None = None,
    *,
    qps: float = 100.0,
    duration: float = 15.0,
    via: Literal["service", "gateway"] = "service",
    rollout_at: float | None = None,
    c: int | None = None,
    cluster_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ExperimentResult:
    """``kubectl set image`` on ``deployment-naive.yaml`` under load; see the module doc."""
    if via not in ("service", "gateway"):
        raise ConfigError(f"via must be 'service' or 'gateway', got {via!r}")
    at = _check(qps, duration, rollout_at)
    docs = [manifest("configmap.yaml"), manifest("service.yaml"), manifest("deployment-naive.yaml")]
    if via == "gateway":
        docs += [
            manifest("istio/destinationrule.yaml"),
            manifest("istio/gateway.yaml"),
            manifest("istio/virtualservice.yaml"),
        ]
    scenario = "naive-rolling-update" + ("" if via == "service" else "-gateway")
    return await _without_sidecars(
        scenario, cluster, docs=docs, via=via, qps=qps, duration=duration, rollout_at=at, c=c,
        cluster_options=cluster_options, stop=stop,
    )  # fmt: skip


async def run_hardened_rolling_update(
    cluster: Cluster | None = None,
    *,
    qps: float = 100.0,
    duration: float = 15.0,
    rollout_at: float | None = None,
    c: int | None = None,
    cluster_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ExperimentResult:
    """``kubectl set image`` on ``deployment.yaml`` under load through kube-proxy: 0 errors."""
    at = _check(qps, duration, rollout_at)
    docs = [manifest("configmap.yaml"), manifest("service.yaml"), manifest("deployment.yaml")]
    return await _without_sidecars(
        "hardened-rolling-update", cluster, docs=docs, via="service", qps=qps,
        duration=duration, rollout_at=at, c=c, cluster_options=cluster_options, stop=stop,
    )  # fmt: skip


async def _without_sidecars(
    scenario: str,
    cluster: Cluster | None,
    *,
    docs: list[dict[str, Any]],
    via: str,
    qps: float,
    duration: float,
    rollout_at: float,
    c: int | None,
    cluster_options: dict[str, Any] | None,
    stop: asyncio.Event | None,
) -> ExperimentResult:
    """What the naive and the hardened experiments share: the rolling update of ``docs``'
    Deployment, pods without sidecars, under load on /k8s/demo through ``via``."""
    conns = c or _connections(qps)
    params = {"qps": qps, "duration": duration, "via": via, "rollout_at": rollout_at, "c": conns}
    loads = [LoadSpec("demo", "/k8s/demo", qps, conns)]

    async def body(s: Session) -> None:
        await _rolling(
            s, docs=docs, deployment=APP, via=via, loads=loads, duration=duration,
            rollout_at=rollout_at, rollout_timeout=90,
        )  # fmt: skip

    return await run_session(
        scenario,
        cluster=cluster,
        cluster_options={"sidecar_injection": False, **(cluster_options or {})},
        params=params,
        stop=stop,
        body=body,
    )


async def run_sidecar_rolling_update(
    cluster: Cluster | None = None,
    *,
    qps: float = 50.0,
    duration: float = 14.0,
    retries: bool = False,
    max_retries: int | None = None,
    longtask_qps: float = 2.5,
    longtask_seconds: float = 10.0,
    longtask_workers: int = 40,
    prestop_seconds: float = 30.0,
    rollout_at: float | None = 2.0,
    sidecar_mode: Literal["native", "classic"] | None = None,
    drain_setting: str | None = None,
    cluster_options: dict[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> ExperimentResult:
    """A rolling update of ``deployment.yaml`` behind Istio sidecars; see the module doc.

    ``sidecar_mode``: the pods' ``sidecar.istio.io/nativeSidecar`` annotation (``"native"`` ->
    ``"true"``, ``"classic"`` -> ``"false"``; None: no annotation, the versions decide -- native
    on Istio 1.27+ with Kubernetes 1.33+). ``drain_setting`` (classic sidecars): the pods'
    ``proxy.istio.io/config``: ``"exit-on-zero"`` (``proxyMetadata:
    EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"``) or ``"drain-duration=SECONDS"``
    (``terminationDrainDuration``). ``extra`` gets ``sidecar_mode`` (what the pods ran),
    ``versions`` (the embedded backend's profile) and ``long_tasks_cut``.

    In-memory overrides (recorded in ``params``): preStop ``sleep`` = ``prestop_seconds``
    (30 s, the original demo's; ``terminationGracePeriodSeconds`` stays 32);
    ``LONGTASK_WORKERS`` = ``longtask_workers`` (so the long-task load measures the drain, not
    a saturated worker pool); with ``retries``, the VirtualService gets the original's retry
    policy with ``perTryTimeout`` raised to ``longtask_seconds + 5`` s. ``max_retries`` sets the
    DestinationRule's ``connectionPool.http.maxRetries`` (retries in flight per cluster):
    Istio's default is unlimited (2^32-1); Envoy's own default is 3.
    """
    at = _check(qps, duration, rollout_at)
    if sidecar_mode is not None:
        sidecar_mode = check_sidecar_mode(sidecar_mode)
    proxy_config = parse_drain_setting(drain_setting)
    if sidecar_mode == "classic" and not proxy_config and longtask_seconds <= 5 < prestop_seconds:
        raise ConfigError("longtask_seconds must exceed the 5 s sidecar drain to be cut by it")
    deployment = manifest("deployment.yaml")
    container = app_container(deployment)
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": int(prestop_seconds)}}}
    set_env(deployment, "LONGTASK_WORKERS", str(longtask_workers))
    pod_meta = deployment["spec"]["template"].setdefault("metadata", {})
    annotations = pod_meta.setdefault("annotations", {})
    if sidecar_mode is not None:
        annotations[NATIVE_SIDECAR_ANNOTATION] = "true" if sidecar_mode == "native" else "false"
    if proxy_config:
        annotations[PROXY_CONFIG_ANNOTATION] = json.dumps(proxy_config)
    if not annotations:
        del pod_meta["annotations"]
    vs = manifest("istio/virtualservice.yaml")
    retry_policy = None
    if retries:
        retry_policy = {**ORIGINAL_RETRIES, "perTryTimeout": f"{int(longtask_seconds) + 5}s"}
        vs["spec"]["http"][0]["retries"] = retry_policy
    dr = manifest("istio/destinationrule.yaml")
    if max_retries is not None:
        pool = dr["spec"].setdefault("trafficPolicy", {}).setdefault("connectionPool", {})
        pool.setdefault("http", {})["maxRetries"] = int(max_retries)
    docs = [
        manifest("namespace.yaml"),
        manifest("configmap.yaml"),
        manifest("service.yaml"),
        deployment,
        dr,
        manifest("istio/gateway.yaml"),
        vs,
    ]
    long_c = max(4, math.ceil(longtask_qps * (longtask_seconds + 3)))
    loads = [
        LoadSpec("demo", "/k8s/demo", qps, _connections(qps)),
        LoadSpec(
            "longTask",
            f"/k8s/longTask?seconds={longtask_seconds:g}",
            longtask_qps,
            long_c,
            timeout=longtask_seconds * 2 + 15,
        ),
    ]
    params = {
        "qps": qps,
        "duration": duration,
        "retries": retry_policy,
        "max_retries": max_retries,
        "longtask_qps": longtask_qps,
        "longtask_seconds": longtask_seconds,
        "overrides": {
            "preStop.sleep.seconds": prestop_seconds,
            "LONGTASK_WORKERS": longtask_workers,
        },
        "rollout_at": at,
        "sidecar_mode": sidecar_mode,
        "drain_setting": drain_setting,
        "pod_annotations": dict(annotations),
    }

    async def body(s: Session) -> None:
        versions = getattr(s.cluster, "versions", None)
        s.result.extra["versions"] = versions.to_dict() if versions is not None else None
        await _rolling(
            s, docs=docs, deployment=APP, via="gateway", loads=loads, duration=duration,
            rollout_at=at, rollout_timeout=120,
        )  # fmt: skip
        await _drain_report(s)

    return await run_session(
        "sidecar-rolling-update"
        + (f"-{sidecar_mode}" if sidecar_mode else "")
        + (f"-{drain_setting}" if drain_setting else "")
        + ("-retries" if retries else "")
        + (f"-maxretries{max_retries}" if max_retries is not None else ""),
        cluster=cluster,
        cluster_options=dict(cluster_options or {}),
        params=params,
        stop=stop,
        body=body,
    )


NATIVE_SIDECAR_ANNOTATION = "sidecar.istio.io/nativeSidecar"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"


def parse_drain_setting(value: str | None) -> dict[str, Any]:
    """``exit-on-zero`` or ``drain-duration=SECONDS`` -> ProxyConfig (``proxy.istio.io/config``)."""
    if value is None:
        return {}
    text = str(value).strip()
    if text == "exit-on-zero":
        return {"proxyMetadata": {"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true"}}
    name, _, seconds = text.partition("=")
    if name == "drain-duration":
        try:
            number = float(seconds.removesuffix("s"))
        except ValueError:
            number = -1.0
        if number >= 0 and math.isfinite(number):
            return {"terminationDrainDuration": f"{number:g}s"}
    raise ConfigError(
        f"drain_setting {value!r} must be 'exit-on-zero' or 'drain-duration=SECONDS' "
        "(pilot-agent's terminationDrainDuration, e.g. drain-duration=15)"
    )


async def _drain_report(s: Session) -> None:
    """What the sidecar drains cut and what the gateway retried (embedded backend).

    ``long_tasks_cut``: requests in flight through a sidecar when it exited (the embedded
    backend counts them at the proxy; with /k8s/demo's short requests these are long tasks);
    elsewhere, the long-task responses the gateway marked ``UC`` (upstream connection
    termination)."""
    events = s.cluster.events(since=s.t0)
    exits = [e for e in events if e.kind == EventKind.SIDECAR_EXITED]
    cut = sum(int(e.data.get("requests_cut", 0)) for e in exits)
    s.result.extra["requests_cut_by_sidecar_exit"] = cut
    modes = sorted(
        {str(e.data["sidecar_mode"]) for e in events if e.data.get("sidecar_mode")}
        | {str(p.extra["sidecar_mode"]) for p in await _pods(s) if p.extra.get("sidecar_mode")}
    )
    s.result.extra["sidecar_mode"] = modes[0] if len(modes) == 1 else (modes or None)
    if exits:
        s.result.extra["long_tasks_cut"] = cut
    else:
        run = s.runs.get("longTask")
        results = getattr(run, "results", None) if run is not None else None
        flags = getattr(results, "by_flags", {}) or {}
        s.result.extra["long_tasks_cut"] = sum(n for f, n in flags.items() if "UC" in str(f))
    stats = getattr(s.cluster, "proxy_stats", None)
    if stats is None:
        return
    values = await stats("gateway", r"^cluster\.outbound.*upstream_rq_retry")
    totals: dict[str, int] = {}
    for name, value in values.items():
        key = name.rsplit(".", 1)[-1]
        totals[key] = totals.get(key, 0) + int(value)
    s.result.extra["gateway_retries"] = totals
