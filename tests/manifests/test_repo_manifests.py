"""The repository's manifests: valid, restricted, consistent with each other and with the
contract in docs/architecture.md (names other parts build against)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab_app.manifests import (
    ISTIO_API_VERSION,
    MANIFESTS_DIR,
    Manifest,
    check_routes,
    load_documents,
    load_manifests,
    parse_quantity,
)
from lab_app.manifests.pod_security_standards import WORKLOAD_KINDS, check_restricted

APP = "zero-downtime-rollingupdate"
YAML_FILES = sorted(
    p.relative_to(MANIFESTS_DIR).as_posix()
    for p in MANIFESTS_DIR.rglob("*")
    if p.suffix in (".yaml", ".yml")
)
CLUSTER_FILES = [f for f in YAML_FILES if f != "kind-cluster.yaml"]


@pytest.fixture(scope="module")
def docs() -> list[Manifest]:
    return load_documents(MANIFESTS_DIR)


def one(name: str) -> dict[str, Any]:
    (obj,) = load_manifests(MANIFESTS_DIR / name)
    return obj


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_contract_files_exist() -> None:
    expected = {
        "namespace.yaml",
        "configmap.yaml",
        "service.yaml",
        "deployment.yaml",
        "deployment-naive.yaml",
        "deployment-v1.yaml",
        "deployment-v2.yaml",
        "deployment-v3.yaml",
        "hpa.yaml",
        "hpa-v1-v2.yaml",
        "istio/gateway.yaml",
        "istio/virtualservice.yaml",
        "istio/virtualservice-v1-v2.yaml",
        "istio/destinationrule.yaml",
        "kind-cluster.yaml",
    }
    assert expected <= set(YAML_FILES)


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_every_file_loads_and_validates(name: str) -> None:
    manifests = load_documents(MANIFESTS_DIR / name)
    assert manifests, f"{name} holds no object"
    for m in manifests:
        assert m.source == f"manifests/{name}"
        assert m.name and m.kind
        # The contract: resources carry no namespace, the backend chooses it.
        assert "namespace" not in m.obj["metadata"], f"{name}: {m.ref} sets a namespace"


def test_directory_load_is_sorted_and_skips_kind_config(docs: list[Manifest]) -> None:
    sources = [m.source for m in docs]
    assert sources == sorted(sources)
    assert "manifests/kind-cluster.yaml" not in sources
    refs = {m.ref for m in docs}
    assert {
        "namespace/zdlab",
        "configmap/cluster",
        f"service/{APP}",
        f"deployment/{APP}",
        f"deployment/{APP}-v1",
        f"deployment/{APP}-v2",
        f"deployment/{APP}-v3",
        f"horizontalpodautoscaler/{APP}",
        f"horizontalpodautoscaler/{APP}-v1",
        f"horizontalpodautoscaler/{APP}-v2",
        "gateway/demo-gateway",
        f"virtualservice/{APP}",
        f"destinationrule/{APP}",
    } == refs


def test_api_versions_are_current(docs: list[Manifest]) -> None:
    for m in docs:
        if m.kind == "HorizontalPodAutoscaler":
            assert m.api_version == "autoscaling/v2"
        if m.kind in ("Gateway", "VirtualService", "DestinationRule"):
            assert m.api_version == ISTIO_API_VERSION == "networking.istio.io/v1"
    for name in YAML_FILES:
        text = (MANIFESTS_DIR / name).read_text()
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"v1alpha3|v2beta1|v2beta2|extensions/v1beta1", body), name


def test_every_workload_passes_pod_security_restricted(docs: list[Manifest]) -> None:
    workloads = [m for m in docs if m.kind in WORKLOAD_KINDS]
    assert len(workloads) == 5
    for m in workloads:
        assert check_restricted(m.obj) == [], m.source


def test_namespace_enforces_restricted_and_injection() -> None:
    ns = one("namespace.yaml")
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == "zdlab"
    assert labels["istio-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_configmap_carries_the_service_environment() -> None:
    cm = one("configmap.yaml")
    data = cm["data"]
    assert cm["metadata"]["name"] == "cluster"
    assert all(isinstance(v, str) for v in data.values())
    # Only variables the service accepts (docs/architecture.md): it exits on unknown values.
    known = {
        "APP_VERSION",
        "IMAGE_ID",
        "POD_NAME",
        "SHUTDOWN_MODE",
        "DRAIN_SECONDS",
        "GRACE_SECONDS",
        "ENABLE_FAULT_ENDPOINTS",
        "MEMORY_LIMIT_MB",
        "FULLGC_SECONDS",
        "LONGTASK_WORKERS",
        "FAULT_ERROR_RATE",
        "FAULT_DELAY_MS",
        "KEEPALIVE_SECONDS",
    }
    assert set(data) <= known
    assert data["ENABLE_FAULT_ENDPOINTS"] == "true"
    assert data["SHUTDOWN_MODE"] == "graceful"
    # no self-kill: /k8s/memoryleak ends at the container's memory limit (OOMKilled)
    assert "MEMORY_LIMIT_MB" not in data
    for key in ("DRAIN_SECONDS", "GRACE_SECONDS", "FULLGC_SECONDS", "LONGTASK_WORKERS"):
        assert float(data[key]) >= 0


def test_service_port_and_selector() -> None:
    svc = one("service.yaml")
    assert svc["metadata"]["name"] == APP
    assert svc["spec"]["selector"] == {"app": APP}
    (port,) = svc["spec"]["ports"]
    assert port["name"] == "http" and port["port"] == 8080


HARDENED = ["deployment.yaml", "deployment-v1.yaml", "deployment-v2.yaml", "deployment-v3.yaml"]


@pytest.mark.parametrize("name", HARDENED)
def test_hardened_deployment(name: str) -> None:
    dep = one(name)
    cm = one("configmap.yaml")["data"]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    c = container(dep)
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    ready = c["readinessProbe"]
    assert ready["httpGet"] == {"path": "/healthz/ready", "port": "http"}
    assert 1 <= ready["periodSeconds"] <= 2
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz/live", "port": "http"}
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    pre_stop = c["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}  # native sleep: no shell or curl in the image
    sleep = pre_stop["sleep"]["seconds"]
    assert sleep >= 2  # longer than the endpoint propagation delay (about 1 s)
    # The whole shutdown fits in the grace period, with room before SIGKILL.
    budget = sleep + float(cm["DRAIN_SECONDS"]) + float(cm["GRACE_SECONDS"])
    assert budget < pod["terminationGracePeriodSeconds"]
    assert c["envFrom"] == [{"configMapRef": {"name": "cluster"}}]
    env = env_of(c)
    assert env["SHUTDOWN_MODE"] == "graceful"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    limits = c["resources"]["limits"]
    assert parse_quantity(limits["cpu"]) == 1
    assert parse_quantity(limits["memory"]) == 256 * 2**20
    # /k8s/memoryleak is stopped by this limit (OOMKilled), not by a self-kill below it.
    assert "MEMORY_LIMIT_MB" not in cm and "MEMORY_LIMIT_MB" not in env
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 10001


@pytest.mark.parametrize(
    ("name", "version"),
    [("deployment-v1.yaml", "v1"), ("deployment-v2.yaml", "v2"), ("deployment-v3.yaml", "v3")],
)
def test_versioned_deployments(name: str, version: str) -> None:
    dep = one(name)
    labels = {"app": APP, "version": version}
    assert dep["metadata"]["name"] == f"{APP}-{version}"
    assert dep["spec"]["selector"]["matchLabels"] == labels
    assert dep["spec"]["template"]["metadata"]["labels"] == labels
    assert container(dep)["image"] == f"zdlab/demo:{version}"
    rate = env_of(container(dep)).get("FAULT_ERROR_RATE")
    assert rate == ("0.05" if version == "v3" else None)


def test_single_deployment_and_naive_share_name_and_selector() -> None:
    hardened, naive = one("deployment.yaml"), one("deployment-naive.yaml")
    assert hardened["metadata"]["name"] == naive["metadata"]["name"] == APP
    # A Deployment's selector is immutable: both files must be appliable over each other.
    assert hardened["spec"]["selector"] == naive["spec"]["selector"]
    assert container(hardened)["image"] == container(naive)["image"] == "zdlab/demo:v1"
    # no `version` label: set_image changes the image, and the subsets of the per-version
    # Deployments (deployment-v1/-v2.yaml) must never select these pods
    assert hardened["spec"]["template"]["metadata"]["labels"] == {"app": APP, "track": "plain"}
    for versioned in ("deployment-v1.yaml", "deployment-v2.yaml"):
        selector = one(versioned)["spec"]["selector"]["matchLabels"]
        assert not set(selector.items()) <= set(
            hardened["spec"]["template"]["metadata"]["labels"].items()
        )


def test_naive_deployment_lacks_the_mitigations() -> None:
    naive = one("deployment-naive.yaml")
    c = container(naive)
    assert "readinessProbe" not in c  # Ready as soon as the container starts
    assert "lifecycle" not in c  # no preStop
    assert env_of(c)["SHUTDOWN_MODE"] == "naive"
    assert naive["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": "25%",
        "maxUnavailable": "25%",
    }
    assert c["envFrom"] == [{"configMapRef": {"name": "cluster"}}]


@pytest.mark.parametrize(
    ("name", "targets"), [("hpa.yaml", [APP]), ("hpa-v1-v2.yaml", [f"{APP}-v1", f"{APP}-v2"])]
)
def test_hpas(name: str, targets: list[str]) -> None:
    hpas = load_manifests(MANIFESTS_DIR / name)
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == targets
    deployments = {
        d["metadata"]["name"] for f in HARDENED for d in load_manifests(MANIFESTS_DIR / f)
    }
    for h in hpas:
        assert h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert h["spec"]["scaleTargetRef"]["name"] in deployments
        assert h["spec"]["minReplicas"] == 2
        (metric,) = h["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"


def test_gateway() -> None:
    gw = one("istio/gateway.yaml")
    assert gw["metadata"]["name"] == "demo-gateway"
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    (server,) = gw["spec"]["servers"]
    assert server["port"] == {"number": 80, "name": "http", "protocol": "HTTP"}
    assert server["hosts"] == ["*"]


def test_virtualservices_share_one_name_and_route_through_the_gateway() -> None:
    single, weighted = one("istio/virtualservice.yaml"), one("istio/virtualservice-v1-v2.yaml")
    assert single["metadata"]["name"] == weighted["metadata"]["name"] == APP
    for vs in (single, weighted):
        assert vs["spec"]["gateways"] == ["demo-gateway"]
        assert vs["spec"]["hosts"] == ["*"]
    (route,) = single["spec"]["http"]
    assert route["route"] == [{"destination": {"host": APP, "port": {"number": 8080}}}]
    long_tasks, http = weighted["spec"]["http"]
    for route in (long_tasks, http):
        assert [(d["destination"]["subset"], d["weight"]) for d in route["route"]] == [
            ("version-v1", 90),
            ("version-v2", 10),
        ]
    # The long-task route's per-try timeout exceeds the longest task (60 s): the original's
    # 2 s would turn every /k8s/longTask into 504 UT.
    assert long_tasks["match"] == [{"uri": {"prefix": "/k8s/longTask"}}]
    assert long_tasks["retries"]["perTryTimeout"] == "65s"
    assert http["retries"] == {
        "attempts": 5,
        "perTryTimeout": "2s",
        "retryOn": "gateway-error,retriable-4xx,connect-failure,refused-stream",
    }


def test_destinationrule_subsets_select_one_versioned_deployment_each() -> None:
    dr = one("istio/destinationrule.yaml")
    assert dr["metadata"]["name"] == dr["spec"]["host"] == APP
    subsets = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
    assert set(subsets) == {"version-v1", "version-v2", "version-v3"}
    versioned = [one(f"deployment-{v}.yaml") for v in ("v1", "v2", "v3")]
    for name, selector in subsets.items():
        matching = [
            d["metadata"]["name"]
            for d in versioned
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching == [f"{APP}-{name.removeprefix('version-')}"]
    # The proxy must drop idle upstream connections before the app (keep-alive race, 503 UC).
    idle = dr["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"]
    keepalive = float(one("configmap.yaml")["data"]["KEEPALIVE_SECONDS"])
    from lab_app.manifests import parse_duration

    assert parse_duration(idle) < keepalive


def test_routes_cross_check_passes_on_the_repo(docs: list[Manifest]) -> None:
    vss = [m for m in docs if m.kind == "VirtualService"]
    drs = [m for m in docs if m.kind == "DestinationRule"]
    assert len(vss) == 2 and len(drs) == 1
    check_routes(vss, drs)  # raises on a problem
    check_routes([m.obj for m in vss], [m.obj for m in drs])


def test_kind_cluster_config_publishes_the_gateway_on_localhost_only() -> None:
    config = yaml.safe_load((MANIFESTS_DIR / "kind-cluster.yaml").read_text())
    assert config["apiVersion"].startswith("kind.x-k8s.io/")
    assert config["kind"] == "Cluster"
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    assert mappings
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings)
    assert {"containerPort": 31380, "hostPort": 31380}.items() <= mappings[0].items()
    assert load_manifests(MANIFESTS_DIR / "kind-cluster.yaml") == []


def test_readme_lists_every_file() -> None:
    readme = (MANIFESTS_DIR / "README.md").read_text()
    for name in YAML_FILES:
        assert f"`{name}`" in readme, name


def test_relative_names_resolve_from_the_manifests_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # as a notebook running in notebooks/
    assert load_manifests("deployment.yaml") == load_manifests(MANIFESTS_DIR / "deployment.yaml")
    assert load_manifests("manifests/istio/gateway.yaml")[0]["metadata"]["name"] == "demo-gateway"
