"""The set-up files agree with each other and with the backend (no cluster needed):
the Istio overlay pins the gateway's http2 nodePort to the port kind maps to the host,
installs the CNI node agent, and the scripts pin their versions and pass shellcheck."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from lab_app.cluster.kube.gateway import GATEWAY_PORT_NAME, GATEWAY_SERVICE, kind_port_mappings
from lab_app.paths import REPO_ROOT as REPO

OVERLAY = REPO / "scripts" / "istio-operator.yaml"
UP = REPO / "scripts" / "cluster-up.sh"
DOWN = REPO / "scripts" / "cluster-down.sh"
LIB = REPO / "scripts" / "lib.sh"


def overlay_spec() -> dict:
    doc = yaml.safe_load(OVERLAY.read_text())
    assert doc["apiVersion"] == "install.istio.io/v1alpha1" and doc["kind"] == "IstioOperator"
    return doc["spec"]


def test_gateway_node_port_is_the_one_kind_maps() -> None:
    spec = overlay_spec()
    (gateway,) = [g for g in spec["components"]["ingressGateways"] if g["name"] == GATEWAY_SERVICE]
    service = gateway["k8s"]["service"]
    assert service["type"] == "NodePort"
    ports = {p["name"]: p for p in service["ports"]}
    assert ports[GATEWAY_PORT_NAME]["nodePort"] == kind_port_mappings()[0].container_port
    assert ports[GATEWAY_PORT_NAME]["port"] == 80
    # the chart's ports are replaced, not merged: every one keeps a targetPort above 1024
    assert all(p["targetPort"] > 1024 for p in ports.values())


def test_cni_on_and_no_ambient() -> None:
    spec = overlay_spec()
    assert spec["profile"] == "demo"
    assert spec["components"]["cni"]["enabled"] is True
    assert "ztunnel" not in spec["components"]
    assert "ambient" not in spec.get("values", {}).get("profile", "")


def test_the_gateway_keeps_the_counters_notebooks_05_and_07_read() -> None:
    """wait_subset_idle and the gateway-success-rate check read upstream_rq_* per cluster."""
    kept = overlay_spec()["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]["inclusionRegexps"]
    for stat in ("upstream_rq_active", "upstream_rq_total", "upstream_rq_completed"):
        assert any(re.fullmatch(rx, f"cluster.outbound|8080|version-v1|x.upstream_rq_{stat[12:]}")
                   for rx in kept), (stat, kept)  # fmt: skip


def default(name: str) -> str:
    match = re.search(rf'^{name}="\$\{{{name}:-([^}}]+)\}}"$', UP.read_text(), re.M)
    assert match, f"{name} has no overridable default in {UP.name}"
    return match.group(1)


def test_versions_are_pinned_and_overridable() -> None:
    assert re.fullmatch(r"v0\.\d+\.\d+", default("KIND_VERSION"))
    image = default("KIND_NODE_IMAGE")
    assert re.fullmatch(r"kindest/node:v1\.34\.\d+@sha256:[0-9a-f]{64}", image), image
    assert re.fullmatch(r"1\.28\.\d+", default("ISTIO_VERSION"))
    assert re.fullmatch(r"v1\.\d+\.\d+", default("GATEWAY_API_VERSION"))
    text = UP.read_text()
    assert "--ambient" not in text and "kubectl patch" not in text.replace("# ", "")
    assert '-f "$ISTIO_OVERLAY"' in text


@pytest.mark.parametrize("script", [UP, DOWN, LIB], ids=lambda p: p.name)
def test_scripts_parse_and_pass_shellcheck(script) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    done = subprocess.run(
        ["shellcheck", "-x", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout
