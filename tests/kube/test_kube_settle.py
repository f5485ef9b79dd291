"""config_settled's reading of the gateway's Envoy config: the rows of the shared
proxy-config view, built from config dumps shaped like the ones Istio's gateway holds."""

from __future__ import annotations

import time

import pytest
from kube_apiserver import Reply, not_found

from lab_app.cluster.kube import KubeCluster
from lab_app.cluster.kube.proxy import DUMP_TYPES
from lab_app.cluster.kube.settle import expected_shares, route_shares, settle_problem
from lab_app.cluster.proxyconfig import proxy_config_view
from lab_app.errors import ConfigNotSettledError

NS = "zdlab"
FQDN = "zero-downtime-rollingupdate.zdlab.svc.cluster.local"
ISTIO = "/apis/networking.istio.io/v1/namespaces/zdlab"


def vs(weights: dict[str, int] | None, name: str = "zero-downtime-rollingupdate") -> dict:
    if weights is None:
        route = [{"destination": {"host": "zero-downtime-rollingupdate", "port": {"number": 8080}}}]
    else:
        route = [
            {
                "destination": {"host": "zero-downtime-rollingupdate", "subset": s},
                "weight": w,
            }
            for s, w in weights.items()
        ]
    return {
        "metadata": {"name": name},
        "spec": {"hosts": ["*"], "gateways": ["demo-gateway"], "http": [{"route": route}]},
    }


def route_dump(clusters: dict[str, int] | None, vs_name: str = "zero-downtime-rollingupdate"):
    """A RoutesConfigDump as an Istio gateway holds it (route metadata names the VS)."""
    if clusters is None:
        action = {"cluster": f"outbound|8080||{FQDN}"}
    else:
        action = {
            "weighted_clusters": {
                "clusters": [
                    {"name": f"outbound|8080|{s}|{FQDN}", "weight": w} for s, w in clusters.items()
                ]
            }
        }
    route = {
        "match": {"prefix": "/"},
        "route": action,
        "metadata": {
            "filter_metadata": {
                "istio": {
                    "config": f"/apis/networking.istio.io/v1/namespaces/{NS}/"
                    f"virtual-service/{vs_name}"
                }
            }
        },
    }
    config = {
        "name": "http.8080",
        "virtual_hosts": [{"name": "*:80", "domains": ["*"], "routes": [route]}],
    }
    return {
        "configs": [
            {"@type": DUMP_TYPES["routes"], "dynamic_route_configs": [{"route_config": config}]}
        ]
    }


def endpoints(*healthy_clusters: str, unhealthy: tuple[str, ...] = ()) -> dict:
    def status(name: str, eds: str) -> dict:
        return {
            "name": name,
            "host_statuses": [
                {
                    "address": {"socket_address": {"address": "10.244.0.9", "port_value": 8080}},
                    "health_status": {"eds_health_status": eds},
                }
            ],
        }

    return {
        "cluster_statuses": [status(c, "HEALTHY") for c in healthy_clusters]
        + [status(c, "UNHEALTHY") for c in unhealthy]
    }


def rows(dump: dict, kind: str) -> list[dict]:
    return proxy_config_view(dump, kind).rows


def test_shares():
    from fractions import Fraction

    held = route_shares(
        {f"outbound|8080|version-v1|{FQDN}": 90, f"outbound|8080|version-v2|{FQDN}": 10}
    )
    assert held == {
        ("zero-downtime-rollingupdate", "version-v1"): Fraction(9, 10),
        ("zero-downtime-rollingupdate", "version-v2"): Fraction(1, 10),
    }
    # weights are relative: 9/1 asks for the same split as 90/10
    assert expected_shares(vs({"version-v1": 9, "version-v2": 1})["spec"]["http"][0]) == held
    assert expected_shares(vs({"version-v1": 0, "version-v2": 100})["spec"]["http"][0]) == {
        ("zero-downtime-rollingupdate", "version-v2"): 1
    }


def test_settled_when_routes_and_endpoints_match():
    spec = [vs({"version-v1": 90, "version-v2": 10})]
    routes = rows(route_dump({"version-v1": 90, "version-v2": 10}), "routes")
    eps = rows(
        endpoints(f"outbound|8080|version-v1|{FQDN}", f"outbound|8080|version-v2|{FQDN}"),
        "endpoints",
    )
    assert settle_problem(spec, routes, eps, NS) is None


def test_old_weights_are_not_settled():
    spec = [vs({"version-v1": 50, "version-v2": 50})]
    routes = rows(route_dump({"version-v1": 90, "version-v2": 10}), "routes")
    problem = settle_problem(spec, routes, None, NS)
    assert problem == (
        "the gateway does not route virtualservice/zero-downtime-rollingupdate http[0] "
        "as version-v1 50%, version-v2 50% yet"
    )


def test_zero_weight_and_a_single_cluster_route():
    # Istio may drop a weight-0 destination and then route to one cluster directly
    spec = [vs({"version-v1": 0, "version-v2": 100})]
    single = route_dump({"version-v2": 100})
    assert settle_problem(spec, rows(single, "routes"), None, NS) is None
    plain = [vs(None)]
    assert settle_problem(plain, rows(route_dump(None), "routes"), None, NS) is None


def test_missing_route_and_unhealthy_endpoint():
    spec = [vs(None, name="other")]
    assert settle_problem(spec, rows(route_dump(None), "routes"), None, NS) == (
        "the gateway has no route from virtualservice/other yet"
    )
    plain = [vs(None)]
    cluster = f"outbound|8080||{FQDN}"
    eps = rows(endpoints(unhealthy=(cluster,)), "endpoints")
    assert settle_problem(plain, rows(route_dump(None), "routes"), eps, NS) == (
        f"the gateway has no healthy endpoint in {cluster} yet"
    )


def test_mesh_only_virtualservices_are_ignored():
    mesh = vs(None)
    mesh["spec"]["gateways"] = ["mesh"]
    assert settle_problem([mesh], [], [], NS) is None


async def test_config_settled_over_http(kubeconfig, fake_api):
    fake_api.on("GET", f"{ISTIO}/virtualservices", {"items": []})
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False)
    try:
        await cluster.config_settled(timeout=1)  # nothing routed through a gateway
        fake_api.on("GET", f"{ISTIO}/virtualservices", Reply(404, not_found("virtualservices")))
        await cluster.config_settled(timeout=1)  # no Istio at all
        fake_api.on("GET", f"{ISTIO}/virtualservices", {"items": [vs(None)]})
        fake_api.on("GET", "/api/v1/namespaces/istio-system/pods", {"items": []})
        started = time.monotonic()
        with pytest.raises(ConfigNotSettledError, match="no ready ingress gateway pod"):
            await cluster.config_settled(timeout=1)
        assert time.monotonic() - started < 5
        listed = fake_api.find("GET", "/api/v1/namespaces/istio-system/pods")
        assert listed[0].query["labelSelector"] == "istio=ingressgateway"
    finally:
        await cluster.close()
