"""Helpers for the progressive-delivery tests (a module name of its own: test directories
share one import namespace)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from lab_app.load.records import Record
from lab_app.progressive.routing import Routing, read_routing
from tests.helpers import alive, eventually, manifest  # noqa: F401 (re-exported to the tests)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"


def virtualservice(stable: str) -> dict[str, Any]:
    """The repo's v1/v2 VirtualService with every route sending all traffic to ``stable``."""
    vs = manifest("istio/virtualservice-v1-v2.yaml")
    for route in vs["spec"]["http"]:
        first = copy.deepcopy(route["route"][0])
        first["destination"]["subset"] = stable
        first.pop("weight", None)
        route["route"] = [first]
    return vs


async def deploy(cluster: Any, versions: Iterable[str], stable: str) -> None:
    """Deployments of ``versions`` (1 replica each), the DestinationRule with every subset,
    the Gateway and a VirtualService sending everything to subset ``stable``; waits until
    the pods are ready and the gateway holds the config."""
    versions = list(versions)
    for version in versions:
        await cluster.build_image(version)
    docs = [manifest("configmap.yaml"), manifest("service.yaml")]
    for version in versions:
        doc = manifest(f"deployment-{version}.yaml")
        doc["spec"]["replicas"] = 1
        docs.append(doc)
    docs += [
        manifest("istio/destinationrule.yaml"),
        manifest("istio/gateway.yaml"),
        virtualservice(stable),
    ]
    await cluster.apply(docs)
    for version in versions:
        await cluster.wait_rollout(f"{APP}-{version}", timeout=60)
    await cluster.config_settled()


async def routing(cluster: Any) -> Routing:
    return await read_routing(cluster, APP)


def records_sent_after(run: Any, t: float) -> list[Record]:
    return [r for r in run.log.records() if r.sent >= t]


def weight_events(cluster: Any, since: float) -> list[Any]:
    return [e for e in cluster.events(since=since) if e.kind == "WeightsChanged"]
