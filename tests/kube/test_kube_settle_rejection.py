"""The kubernetes backend's config_settled sees a rejected (NACKed) push in the gateway's
config dump (Envoy's ``error_state``) and raises ConfigRejectedError, and times out with the
same ConfigNotSettledError (a TimeoutError) as the embedded backend. Istio's deprecated API
versions are applied as written."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_apiserver import Reply, not_found

from lab_app.cluster.kube import KubeCluster
from lab_app.cluster.kube import proxy as proxy_mod
from lab_app.cluster.kube.resources import apply_request
from lab_app.cluster.kube.settle import rejected_updates
from lab_app.errors import ConfigNotSettledError, ConfigRejectedError, LabError

NS = "zdlab"
FQDN = "zero-downtime-rollingupdate.zdlab.svc.cluster.local"
ISTIO = f"/apis/networking.istio.io/v1/namespaces/{NS}"
V1 = f"outbound|8080|version-v1|{FQDN}"
REASON = "Proto constraint validation failed (ClusterValidationError.LbPolicy: value must be one"


def vs() -> dict[str, Any]:
    return {
        "metadata": {"name": "zero-downtime-rollingupdate"},
        "spec": {
            "hosts": ["*"],
            "gateways": ["demo-gateway"],
            "http": [
                {"route": [{"destination": {"host": "zero-downtime-rollingupdate",
                                            "subset": "version-v1"}}]}
            ],
        },
    }  # fmt: skip


def config_dump(*, rejected: bool) -> dict[str, Any]:
    route = {
        "match": {"prefix": "/"},
        "route": {"cluster": V1},
        "metadata": {
            "filter_metadata": {
                "istio": {
                    "config": f"/apis/networking.istio.io/v1/namespaces/{NS}/"
                    "virtual-service/zero-downtime-rollingupdate"
                }
            }
        },
    }
    routes = {
        "name": "http.8080",
        "virtual_hosts": [{"name": "*:80", "domains": ["*"], "routes": [route]}],
    }
    cluster: dict[str, Any] = {"cluster": {"name": V1}, "version_info": "2026-01-01T00:00:00Z/7"}
    if rejected:
        cluster["error_state"] = {
            "failed_configuration": {"name": V1, "lb_policy": "NOT_A_POLICY"},
            "last_update_attempt": "2026-01-01T00:00:05Z",
            "details": REASON,
        }
        cluster["client_status"] = "NACKED"
    return {
        "configs": [
            {"@type": proxy_mod.DUMP_TYPES["clusters"], "dynamic_active_clusters": [cluster]},
            {"@type": proxy_mod.DUMP_TYPES["routes"], "dynamic_route_configs": [
                {"route_config": routes}]},
        ]
    }  # fmt: skip


ENDPOINTS = {
    "cluster_statuses": [
        {
            "name": V1,
            "host_statuses": [
                {
                    "address": {"socket_address": {"address": "10.244.0.9", "port_value": 8080}},
                    "health_status": {"eds_health_status": "HEALTHY"},
                }
            ],
        }
    ]
}

GATEWAY_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "istio-ingressgateway-1", "namespace": "istio-system"},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_rejected_updates_reads_error_state_and_nack() -> None:
    assert rejected_updates(config_dump(rejected=False)) == {}
    assert rejected_updates(config_dump(rejected=True)) == {V1: REASON}
    listener = {"name": "0.0.0.0_8080", "error_state": {"details": "cannot bind"}}
    dump = {"configs": [{"dynamic_listeners": [listener]}]}
    assert rejected_updates(dump) == {"0.0.0.0_8080": "cannot bind"}
    nacked = {"configs": [{"dynamic_route_configs": [
        {"route_config": {"name": "http.8080"}, "client_status": "NACKED"}]}]}  # fmt: skip
    assert rejected_updates(nacked) == {"http.8080": "rejected (NACK)"}


async def test_config_settled_raises_on_a_rejected_push(kubeconfig, fake_api, monkeypatch):
    fake_api.on("GET", f"{ISTIO}/virtualservices", {"items": [vs()]})
    fake_api.on("GET", "/api/v1/namespaces/istio-system/pods", {"items": [GATEWAY_POD]})
    state = {"rejected": True}
    paths: list[str] = []

    def admin(core: Any, pod: str, namespace: str, path: str) -> Any:
        assert (pod, namespace) == ("istio-ingressgateway-1", "istio-system")
        paths.append(path)
        if path.startswith("/clusters"):
            return copy.deepcopy(ENDPOINTS)
        return config_dump(rejected=state["rejected"])

    monkeypatch.setattr(proxy_mod, "admin_via_port_forward", admin)
    monkeypatch.setattr(proxy_mod.shutil, "which", lambda _name: None)  # no istioctl
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False)
    try:
        with pytest.raises(ConfigRejectedError) as info:
            await cluster.config_settled(timeout=5)
        message = str(info.value)
        assert "proxy/gateway" in message and V1 in message and REASON in message
        assert info.value.rejections == {"proxy/gateway": REASON}
        assert isinstance(info.value, LabError)
        assert "/config_dump" in paths
        # the next push was accepted: Envoy cleared error_state, the config has settled
        state["rejected"] = False
        await cluster.config_settled(timeout=5)
    finally:
        await cluster.close()


async def test_config_settled_times_out_with_the_shared_error(kubeconfig, fake_api):
    fake_api.on("GET", f"{ISTIO}/virtualservices", {"items": [vs()]})
    fake_api.on("GET", "/api/v1/namespaces/istio-system/pods", {"items": []})
    cluster = await KubeCluster.start(kubeconfig=kubeconfig, watch=False)
    try:
        with pytest.raises(TimeoutError) as info:
            await cluster.config_settled(timeout=0.5)
        assert isinstance(info.value, ConfigNotSettledError)
        assert isinstance(info.value, LabError)
        assert "no ready ingress gateway pod" in str(info.value)
        fake_api.on("GET", f"{ISTIO}/virtualservices", {"items": []})
        fake_api.on("GET", "/api/v1/namespaces/istio-system/pods", Reply(404, not_found("pods")))
        await cluster.config_settled(timeout=1)  # nothing routed through a gateway
    finally:
        await cluster.close()


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_deprecated_istio_versions_are_applied_as_written(version: str) -> None:
    for kind, plural in (
        ("Gateway", "gateways"),
        ("VirtualService", "virtualservices"),
        ("DestinationRule", "destinationrules"),
    ):
        obj = {"apiVersion": f"networking.istio.io/{version}", "kind": kind,
               "metadata": {"name": "x"}}  # fmt: skip
        request = apply_request(obj, NS)
        assert request.kwargs["group"] == "networking.istio.io"
        assert request.kwargs["version"] == version
        assert request.kwargs["plural"] == plural
