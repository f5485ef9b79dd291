"""Pod Security Standards: the repo's pods pass "restricted"; a bad pod fails each control."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab_app.manifests import MANIFESTS_DIR, load_manifests
from lab_app.manifests.pod_security_standards import check_baseline, check_restricted, pod_template


def hardened() -> dict[str, Any]:
    return load_manifests(MANIFESTS_DIR / "deployment.yaml")[0]


BAD_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "bad",
        "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
    },
    "spec": {
        "hostNetwork": True,
        "hostPID": True,
        "securityContext": {
            "runAsUser": 0,
            "seccompProfile": {"type": "Unconfined"},
            "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
        },
        "containers": [
            {
                "name": "app",
                "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {
                    "privileged": True,
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]},
                    "procMount": "Unmasked",
                    "seLinuxOptions": {"type": "spc_t", "user": "root"},
                },
            }
        ],
        "volumes": [
            {"name": "host", "hostPath": {"path": "/"}},
            {"name": "n", "nfs": {"server": "s", "path": "/"}},
        ],
    },
}


def test_the_hardened_deployment_passes() -> None:
    assert check_restricted(hardened()) == []
    assert check_baseline(hardened()) == []


def test_a_bad_pod_fails_every_control_with_its_field() -> None:
    findings = check_restricted(BAD_POD)
    text = "\n".join(findings)
    expected = [
        "Host Namespaces: spec.hostNetwork must not be true",
        "Host Namespaces: spec.hostPID must not be true",
        "Privileged Containers: spec.containers[0].securityContext.privileged",
        "Capabilities: spec.containers[0].securityContext.capabilities.add must not add NET_ADMIN",
        "Host Ports: spec.containers[0].ports[0].hostPort",
        "/proc Mount Type: spec.containers[0].securityContext.procMount",
        "SELinux: spec.containers[0].securityContext.seLinuxOptions.type 'spc_t'",
        "SELinux: spec.containers[0].securityContext.seLinuxOptions.user must be unset",
        "HostPath Volumes: spec.volumes[0].hostPath",
        "AppArmor: metadata.annotations['container.apparmor.security.beta.kubernetes.io/app']",
        "Seccomp: spec.securityContext.seccompProfile.type must not be Unconfined",
        "Sysctls: spec.securityContext.sysctls[0].name 'kernel.msgmax'",
        "Volume Types: spec.volumes[1] uses nfs",
        "Privilege Escalation: spec.containers[0].securityContext.allowPrivilegeEscalation"
        " must be false",
        "Running as Non-root: spec.containers[0].securityContext.runAsNonRoot must be true",
        "Running as Non-root user: spec.securityContext.runAsUser must not be 0",
        "Capabilities: spec.containers[0].securityContext.capabilities.drop must include ALL",
        "Capabilities: spec.containers[0].securityContext.capabilities.add"
        " may only add NET_BIND_SERVICE, not NET_ADMIN",
    ]
    for snippet in expected:
        assert snippet in text, f"missing: {snippet}\n--- got:\n{text}"
    # Baseline is the subset without the restricted-only controls.
    baseline = "\n".join(check_baseline(BAD_POD))
    assert "Host Namespaces" in baseline and "Privilege Escalation" not in baseline
    assert "Volume Types" not in baseline


@pytest.mark.parametrize(
    ("path", "value", "finding"),
    [
        (("securityContext", "runAsNonRoot"), None, "Running as Non-root"),
        (("securityContext", "seccompProfile"), None, "Seccomp"),
        (("securityContext", "capabilities", "drop"), [], "capabilities.drop must include ALL"),
        (("securityContext", "allowPrivilegeEscalation"), None, "Privilege Escalation"),
        (("securityContext", "runAsUser"), 0, "runAsUser must not be 0"),
    ],
)
def test_each_restricted_setting_of_the_hardened_container_matters(
    path: tuple[str, ...], value: Any, finding: str
) -> None:
    dep = hardened()
    pod = dep["spec"]["template"]["spec"]
    # Take away the pod-level fallback too, so the container-level field is what counts.
    pod["securityContext"].pop(path[-1], None)
    node = pod["containers"][0]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    findings = check_restricted(dep)
    assert any(finding in f and "spec.template.spec.containers[0]" in f for f in findings), findings


def test_pod_level_settings_are_inherited() -> None:
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
            }
        ],
    }
    assert check_restricted(pod) == []  # a bare pod spec is accepted too
    overridden = copy.deepcopy(pod)
    overridden["containers"][0]["securityContext"]["runAsNonRoot"] = False
    assert any("runAsNonRoot" in f for f in check_restricted(overridden))


def test_init_and_ephemeral_containers_are_checked() -> None:
    dep = hardened()
    pod = dep["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "init", "image": "x"}]
    findings = check_restricted(dep)
    assert any("spec.template.spec.initContainers[0]" in f for f in findings)
    assert not any("containers[0]" in f and "initContainers" not in f for f in findings)


def test_windows_pods_are_exempt_from_linux_only_controls() -> None:
    pod = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "w"}],
    }
    assert check_restricted(pod) == []


def test_pod_template_locations() -> None:
    cron = {
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}},
    }
    _, spec, prefix = pod_template(cron)
    assert prefix == "spec.jobTemplate.spec.template.spec" and spec["containers"][0]["name"] == "c"
    assert any(
        f.startswith("Privilege Escalation: spec.jobTemplate.spec.template.spec.containers[0]")
        for f in check_restricted(cron)
    )
    with pytest.raises(ValueError, match="no pod template"):
        pod_template({"kind": "Service", "spec": {}})
