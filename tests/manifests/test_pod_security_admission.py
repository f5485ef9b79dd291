"""Pod Security admission: namespace labels decide who refuses and who warns, as the API
server's PodSecurity admission (k8s.io/pod-security-admission) does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab_app.manifests import MANIFESTS_DIR, load_manifests, pod_security
from lab_app.manifests.pod_security import Violation, check, message, policy

P = "pod-security.kubernetes.io/"
RESTRICTED_ALL = {
    f"{P}enforce": "restricted",
    f"{P}enforce-version": "latest",
    f"{P}warn": "restricted",
    f"{P}audit": "restricted",
}


def deployment() -> dict[str, Any]:
    return load_manifests(MANIFESTS_DIR / "deployment.yaml")[0]


def pod(escalate: bool = False, host_network: bool = False) -> dict[str, Any]:
    template = copy.deepcopy(deployment()["spec"]["template"])
    template["spec"]["hostNetwork"] = host_network
    for c in template["spec"]["containers"]:
        c["securityContext"]["allowPrivilegeEscalation"] = escalate
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": template["spec"]}


def bad_deployment() -> dict[str, Any]:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "allowPrivilegeEscalation"
    ] = True
    return obj


def modes(violations: list[Violation]) -> list[str]:
    return sorted({v.mode for v in violations})


@pytest.mark.parametrize(
    ("labels", "obj", "expected_modes", "refused"),
    [
        # the lab's own namespace and objects: nothing to say
        (RESTRICTED_ALL, pod(), [], False),
        (RESTRICTED_ALL, deployment(), [], False),
        # a violating Pod is refused; no warnings on top of a refusal
        (RESTRICTED_ALL, pod(escalate=True), ["audit", "enforce"], True),
        # a violating Deployment is never refused, only warned about (and audited)
        (RESTRICTED_ALL, bad_deployment(), ["audit", "warn"], False),
        ({f"{P}enforce": "restricted"}, bad_deployment(), [], False),
        ({f"{P}warn": "restricted"}, pod(escalate=True), ["warn"], False),
        # baseline does not ask for allowPrivilegeEscalation: false, but forbids hostNetwork
        ({f"{P}enforce": "baseline"}, pod(escalate=True), [], False),
        ({f"{P}enforce": "baseline"}, pod(host_network=True), ["enforce"], True),
        # unlabelled and privileged namespaces check nothing
        ({}, pod(escalate=True), [], False),
        (None, pod(escalate=True), [], False),
        ({f"{P}enforce": "privileged"}, pod(host_network=True), [], False),
        # an unparsable level fails closed for enforce, open for warn
        ({f"{P}enforce": "strict"}, pod(escalate=True), ["enforce"], True),
        ({f"{P}warn": "strict"}, pod(escalate=True), [], False),
        # kinds without a pod template are not looked at
        (RESTRICTED_ALL, {"apiVersion": "v1", "kind": "Service", "metadata": {}}, [], False),
    ],
)
def test_admission_table(
    labels: dict[str, str] | None, obj: dict[str, Any], expected_modes: list[str], refused: bool
) -> None:
    violations = check(labels, obj)
    assert modes(violations) == expected_modes
    assert any(v.refuses for v in violations) is refused


def test_violations_name_the_control_field_and_policy() -> None:
    violations = check({f"{P}enforce": "restricted", f"{P}enforce-version": "v1.33"}, pod(True))
    assert violations and all(v.policy == "restricted:v1.33" for v in violations)
    assert violations[0].finding.startswith(
        "Privilege Escalation: spec.containers[0].securityContext.allowPrivilegeEscalation"
    )
    text = message(violations)
    assert text.startswith('violates PodSecurity "restricted:v1.33": Privilege Escalation')
    assert message(violations, "warn") == ""


def test_deployment_warning_points_into_the_template() -> None:
    violations = check(RESTRICTED_ALL, bad_deployment())
    warn = [v for v in violations if v.mode == "warn"]
    assert warn and "spec.template.spec.containers[0]" in warn[0].finding
    assert message(violations, "warn").startswith('would violate PodSecurity "restricted:latest"')


@pytest.mark.parametrize(
    ("version", "expected"),
    [("latest", "latest"), ("v1.33", "v1.33"), ("v1.0", "v1.0"), ("1.33", "latest"),
     ("v1.033", "latest"), ("v2.1", "latest"), (None, "latest")],
)  # fmt: skip
def test_policy_versions(version: str | None, expected: str) -> None:
    labels = {f"{P}audit": "baseline"}
    if version is not None:
        labels[f"{P}audit-version"] = version
    assert policy(labels)["audit"] == ("baseline", expected)
    assert policy(labels)["enforce"] == ("privileged", "latest")


def test_module_exposes_check() -> None:
    assert pod_security.check is check
