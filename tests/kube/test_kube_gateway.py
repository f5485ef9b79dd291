"""Where load goes on a real cluster: NodePort via kind's port mapping, minikube ip,
a load balancer address, or a node address; explicit option and env var first."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client as k8s

from lab_app.cluster.kube.client import ContextInfo
from lab_app.cluster.kube.gateway import (
    GATEWAY_ENV,
    KIND_CONFIG,
    gateway_url,
    kind_host_address,
    kind_port_mappings,
    url_for_service,
)
from lab_app.errors import LabError

KIND = ContextInfo("kind-zdlab", "https://127.0.0.1:6443", "kind", "zdlab")
MINIKUBE = ContextInfo("minikube", "https://192.168.49.2:8443", "minikube", "minikube")
OTHER = ContextInfo("prod", "https://k8s.example:6443")


def ingress_gateway(node_port=31380, svc_type="LoadBalancer", ingress=None):
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="istio-ingressgateway", namespace="istio-system"),
        spec=k8s.V1ServiceSpec(
            type=svc_type,
            ports=[
                k8s.V1ServicePort(name="status-port", port=15021, node_port=30021),
                k8s.V1ServicePort(name="http2", port=80, target_port=8080, node_port=node_port),
                k8s.V1ServicePort(name="https", port=443, node_port=30443),
            ],
        ),
        status=k8s.V1ServiceStatus(
            load_balancer=k8s.V1LoadBalancerStatus(ingress=ingress) if ingress else None
        ),
    )


@pytest.fixture
def kind_config(tmp_path: Path) -> Path:
    path = tmp_path / "kind.yaml"
    path.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
        "  extraPortMappings:\n  - containerPort: 31380\n    hostPort: 8080\n"
        "    listenAddress: 127.0.0.1\n  - containerPort: 30080\n    hostPort: 30080\n"
        "    listenAddress: 0.0.0.0\n"
    )
    return path


def test_kind_maps_the_node_port_to_the_host(kind_config):
    url = url_for_service(ingress_gateway(), KIND, port_name="http2", kind_config=kind_config)
    assert url == "http://127.0.0.1:8080"
    assert kind_host_address(30080, kind_config) == ("127.0.0.1", 30080)


def test_kind_with_an_unmapped_node_port_says_how_to_fix_it(kind_config):
    with pytest.raises(LabError) as info:
        url_for_service(ingress_gateway(32000), KIND, port_name="http2", kind_config=kind_config)
    message = str(info.value)
    assert "32000 is not mapped" in message
    assert str(kind_config) in message
    assert "31380->8080" in message


def test_the_repository_kind_config_is_readable():
    if not KIND_CONFIG.is_file():
        pytest.skip("manifests/kind-cluster.yaml not written yet")
    mappings = kind_port_mappings(KIND_CONFIG)
    assert mappings, "kind-cluster.yaml maps no port: the gateway would be unreachable"
    assert all(m.protocol == "TCP" for m in mappings)


def test_minikube_uses_minikube_ip_and_the_node_port():
    calls = []

    def runner(args):
        calls.append(list(args))
        return "192.168.49.2"

    url = url_for_service(ingress_gateway(), MINIKUBE, port_name="http2", runner=runner)
    assert url == "http://192.168.49.2:31380"
    assert calls == [["minikube", "ip", "-p", "minikube"]]


def test_load_balancer_address_then_node_address():
    lb = ingress_gateway(ingress=[k8s.V1LoadBalancerIngress(ip="172.18.255.200")])
    assert url_for_service(lb, OTHER, port_name="http2") == "http://172.18.255.200"
    named = ingress_gateway(ingress=[k8s.V1LoadBalancerIngress(hostname="lb.example")])
    assert url_for_service(named, OTHER, port_name="http2") == "http://lb.example"
    pending = ingress_gateway()
    assert (
        url_for_service(pending, OTHER, port_name="http2", node_address=lambda: "10.1.2.3")
        == "http://10.1.2.3:31380"
    )
    with pytest.raises(LabError, match=GATEWAY_ENV):
        url_for_service(pending, OTHER, port_name="http2")


def test_cluster_ip_service_has_no_outside_address(kind_config):
    service = k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="zero-downtime-rollingupdate", namespace="zdlab"),
        spec=k8s.V1ServiceSpec(type="ClusterIP", ports=[k8s.V1ServicePort(name="http", port=8080)]),
    )
    with pytest.raises(LabError, match="has no NodePort"):
        url_for_service(service, KIND, port_name="http", kind_config=kind_config)


def test_missing_port_is_named():
    with pytest.raises(LabError, match=r"no port grpc \(ports: status-port:15021, http2:80"):
        url_for_service(ingress_gateway(), OTHER, port_name="grpc")


def test_explicit_option_beats_env_which_beats_discovery(monkeypatch):
    monkeypatch.setenv(GATEWAY_ENV, "http://127.0.0.1:9999/")
    # core=None: neither path may touch the API
    assert gateway_url(None, KIND, explicit="http://127.0.0.1:1234") == "http://127.0.0.1:1234"
    assert gateway_url(None, KIND) == "http://127.0.0.1:9999"


def test_unreadable_kind_config(tmp_path):
    with pytest.raises(LabError, match="cannot read the kind cluster config"):
        kind_port_mappings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n- extraPortMappings:\n  - hostPort: 80\n")
    with pytest.raises(LabError, match="needs an integer containerPort"):
        kind_port_mappings(bad)
