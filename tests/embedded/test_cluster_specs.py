"""Deployment and pod-template parsing: Kubernetes' defaults, arithmetic and clear errors."""

from __future__ import annotations

import pytest
from cluster_testlib import container, manifest

from lab_app.cluster.embedded.specs import Strategy, parse_deployment, template_hash
from lab_app.errors import ManifestError


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 2, (1, 0)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 4, (1, 1)),
        (1, 0, 2, (1, 0)),
        (0, "10%", 2, (0, 1)),  # both resolve to 0: Kubernetes makes unavailable 1
        ("50%", "100%", 3, (2, 3)),
    ],
)
def test_rolling_update_arithmetic(surge, unavailable, replicas, expected) -> None:
    assert Strategy("RollingUpdate", surge, unavailable).resolve(replicas) == expected


def test_kubernetes_defaults() -> None:
    doc = manifest("deployment-naive.yaml")
    del doc["spec"]["strategy"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/healthz/ready", "port": "http"}
    }
    spec = parse_deployment(doc, source="naive.yaml")
    assert spec.strategy.resolve(2) == (1, 0)
    assert spec.template.termination_grace == 30
    probe = spec.template.container.readiness
    assert probe is not None
    assert (probe.initial_delay, probe.period, probe.timeout) == (0, 10, 1)
    assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
    assert spec.template.container.memory_limit == 256 * 2**20


def test_hardened_manifest_fields() -> None:
    spec = parse_deployment(manifest("deployment.yaml"), source="deployment.yaml")
    c = spec.template.container
    assert c.pre_stop is not None and c.pre_stop.sleep_seconds == 5
    assert (
        c.readiness is not None and c.readiness.period == 1 and c.readiness.failure_threshold == 2
    )
    assert spec.template.termination_grace == 32
    assert spec.strategy.resolve(spec.replicas) == (1, 0)


def test_both_zero_is_invalid() -> None:
    doc = manifest("deployment.yaml")
    doc["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": "0%"}
    with pytest.raises(ManifestError) as err:
        parse_deployment(doc, source="deployment.yaml")
    assert err.value.field == "spec.strategy.rollingUpdate.maxUnavailable"
    assert "deployment.yaml" in str(err.value)


def test_exec_prestop_sleep_and_refused_exec() -> None:
    doc = manifest("deployment.yaml")
    container(doc)["lifecycle"]["preStop"] = {"exec": {"command": ["/bin/sh", "-c", "sleep 30"]}}
    assert parse_deployment(doc, source="x").template.container.pre_stop.sleep_seconds == 30
    container(doc)["lifecycle"]["preStop"] = {"exec": {"command": ["curl", "localhost"]}}
    with pytest.raises(ManifestError) as err:
        parse_deployment(doc, source="x.yaml")
    assert err.value.field == "spec.template.spec.containers[0].lifecycle.preStop.exec.command"


def test_exec_probe_is_refused_with_the_field() -> None:
    doc = manifest("deployment.yaml")
    container(doc)["readinessProbe"] = {"exec": {"command": ["curl", "localhost:8080/ping"]}}
    with pytest.raises(ManifestError) as err:
        parse_deployment(doc, source="deployment.yaml")
    assert err.value.field == "spec.template.spec.containers[0].readinessProbe.exec"


def test_template_hash_follows_the_template() -> None:
    a = manifest("deployment.yaml")["spec"]["template"]
    b = manifest("deployment.yaml")["spec"]["template"]
    assert template_hash(a) == template_hash(b)
    b["spec"]["containers"][0]["image"] = "zdlab/demo:v2"
    assert template_hash(a) != template_hash(b)
    assert len(template_hash(a)) == 10
