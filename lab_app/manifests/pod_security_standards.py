"""Pod Security Standards controls, so a manifest that a ``restricted`` namespace refuses is
refused by the embedded backend too, and a test can prove that the lab's own manifests pass.
:mod:`lab_app.manifests.pod_security` applies them the way the API server's admission does
(namespace labels, enforce/warn/audit); this module only says what a pod spec breaks.

The namespace ``zdlab`` carries ``pod-security.kubernetes.io/enforce: restricted``
(``manifests/namespace.yaml``). With that label the API server's Pod Security Admission
rejects any pod that breaks one of the controls below; for a Deployment the Deployment is
accepted but its ReplicaSet cannot create pods (``FailedCreate`` events), which is a
confusing way for a rollout to hang. The controls, their fields and allowed values follow
the Kubernetes documentation "Pod Security Standards"
(https://kubernetes.io/docs/concepts/security/pod-security-standards/, policy version
v1.33), profile *Baseline* plus profile *Restricted*:

Baseline: HostProcess, Host Namespaces, Privileged Containers, Capabilities (only the
default set may be added), HostPath Volumes, Host Ports, AppArmor, SELinux, /proc Mount
Type, Seccomp (not ``Unconfined``), Sysctls (only the safe set).
Restricted adds: Volume Types, Privilege Escalation, Running as Non-root, Running as
Non-root user, Seccomp (``RuntimeDefault`` or ``Localhost`` required), Capabilities
(drop ``ALL``, add only ``NET_BIND_SERVICE``).

Pods with ``spec.os.name: windows`` are exempt from the Linux-only restricted controls
(Privilege Escalation, Seccomp, Capabilities), as in Kubernetes 1.25+.

Each finding is one string ``"<Control>: <field> <problem>"`` naming the field by its
dotted path in the object given, e.g. ``"Privilege Escalation:
spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation must be false
(container 'demo')"`` (on one line).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Pod-template locations per workload kind (apps/v1, batch/v1, core/v1).
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
WORKLOAD_KINDS = frozenset(_TEMPLATE_PATHS)

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SECCOMP_RESTRICTED = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def pod_template(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], str]:
    """Return ``(pod metadata, pod spec, dotted path of the spec)`` of a workload or pod.

    Accepts a Pod, a workload (Deployment, StatefulSet, Job, CronJob, ...), a pod template
    (``{"metadata": ..., "spec": ...}``) or a bare pod spec (``{"containers": [...]}``).
    Raises ``ValueError`` for anything else.
    """
    kind = obj.get("kind")
    if isinstance(kind, str):
        if kind not in _TEMPLATE_PATHS:
            raise ValueError(f"{kind} has no pod template")
        node: Any = obj
        for key in _TEMPLATE_PATHS[kind]:
            node = node.get(key) if isinstance(node, Mapping) else None
        prefix = ".".join((*_TEMPLATE_PATHS[kind], "spec"))
    elif "containers" in obj:
        return {}, obj, ""
    else:
        node, prefix = obj, "spec"
    if not isinstance(node, Mapping) or not isinstance(node.get("spec"), Mapping):
        raise ValueError(f"no pod spec at {prefix}")
    return node.get("metadata") or {}, node["spec"], prefix


def check_baseline(obj: Mapping[str, Any]) -> list[str]:
    """Findings of the Pod Security Standards *Baseline* profile (empty list: passes)."""
    return list(_check(obj, restricted=False))


def check_restricted(obj: Mapping[str, Any]) -> list[str]:
    """Findings of the Pod Security Standards *Restricted* profile (empty list: passes)."""
    return list(_check(obj, restricted=True))


def _join(prefix: str, *parts: str) -> str:
    return ".".join(p for p in (prefix, *parts) if p)


def _containers(spec: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(group) or []):
            if isinstance(container, Mapping):
                yield _join(prefix, f"{group}[{i}]"), container


def _check(obj: Mapping[str, Any], *, restricted: bool) -> Iterator[str]:
    meta, spec, prefix = pod_template(obj)
    meta_prefix = prefix[: -len("spec")] + "metadata" if prefix else "metadata"
    psc: Mapping[str, Any] = spec.get("securityContext") or {}
    psc_path = _join(prefix, "securityContext")
    containers = list(_containers(spec, prefix))
    windows = (spec.get("os") or {}).get("name") == "windows"

    # --- Baseline -------------------------------------------------------------------
    if (psc.get("windowsOptions") or {}).get("hostProcess") is True:
        yield f"HostProcess: {psc_path}.windowsOptions.hostProcess must not be true"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            yield f"Host Namespaces: {_join(prefix, field)} must not be true"
    for path, c in containers:
        who = f"(container {c.get('name', '?')!r})"
        sc: Mapping[str, Any] = c.get("securityContext") or {}
        sc_path = f"{path}.securityContext"
        if (sc.get("windowsOptions") or {}).get("hostProcess") is True:
            yield f"HostProcess: {sc_path}.windowsOptions.hostProcess must not be true"
        if sc.get("privileged") is True:
            yield f"Privileged Containers: {sc_path}.privileged must not be true {who}"
        added = [str(x) for x in (sc.get("capabilities") or {}).get("add") or []]
        not_default = sorted(set(added) - BASELINE_CAPABILITIES)
        if not_default:
            yield (
                f"Capabilities: {sc_path}.capabilities.add must not add {', '.join(not_default)}"
                f" {who}"
            )
        for j, port in enumerate(c.get("ports") or []):
            if isinstance(port, Mapping) and port.get("hostPort") not in (None, 0):
                yield f"Host Ports: {path}.ports[{j}].hostPort must be unset or 0 {who}"
        yield from _apparmor(sc, sc_path)
        yield from _selinux(sc, sc_path)
        if sc.get("procMount") not in (None, "Default"):
            yield f"/proc Mount Type: {sc_path}.procMount must be Default {who}"
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield f"Seccomp: {sc_path}.seccompProfile.type must not be Unconfined"
    for i, volume in enumerate(spec.get("volumes") or []):
        if isinstance(volume, Mapping) and "hostPath" in volume:
            yield f"HostPath Volumes: {_join(prefix, f'volumes[{i}]')}.hostPath is not allowed"
    annotations: Mapping[str, Any] = meta.get("annotations") or {}
    for key, value in annotations.items():
        if key.startswith(_APPARMOR_ANNOTATION) and not (
            value in ("", "runtime/default") or str(value).startswith("localhost/")
        ):
            yield f"AppArmor: {meta_prefix}.annotations[{key!r}] must not be {value!r}"
    yield from _apparmor(psc, psc_path)
    yield from _selinux(psc, psc_path)
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield f"Seccomp: {psc_path}.seccompProfile.type must not be Unconfined"
    for i, sysctl in enumerate(psc.get("sysctls") or []):
        name = sysctl.get("name") if isinstance(sysctl, Mapping) else None
        if name not in SAFE_SYSCTLS:
            yield f"Sysctls: {psc_path}.sysctls[{i}].name {name!r} is not a safe sysctl"

    if not restricted:
        return

    # --- Restricted -----------------------------------------------------------------
    for i, volume in enumerate(spec.get("volumes") or []):
        if not isinstance(volume, Mapping):
            continue
        kinds = sorted(set(volume) - {"name"} - RESTRICTED_VOLUME_TYPES - {"hostPath"})
        if kinds:
            yield (
                f"Volume Types: {_join(prefix, f'volumes[{i}]')} uses {', '.join(kinds)};"
                f" allowed: {', '.join(sorted(RESTRICTED_VOLUME_TYPES))}"
            )

    pod_non_root = psc.get("runAsNonRoot")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_non_root is False:
        yield f"Running as Non-root: {psc_path}.runAsNonRoot must be true"
    if psc.get("runAsUser") == 0:
        yield f"Running as Non-root user: {psc_path}.runAsUser must not be 0"
    if not windows and pod_seccomp is not None and pod_seccomp not in SECCOMP_RESTRICTED:
        yield f"Seccomp: {psc_path}.seccompProfile.type must be RuntimeDefault or Localhost"

    for path, c in containers:
        who = f"(container {c.get('name', '?')!r})"
        sc = c.get("securityContext") or {}
        sc_path = f"{path}.securityContext"
        if not windows and sc.get("allowPrivilegeEscalation") is not False:
            yield f"Privilege Escalation: {sc_path}.allowPrivilegeEscalation must be false {who}"
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            yield (
                f"Running as Non-root: {sc_path}.runAsNonRoot must be true, or"
                f" {psc_path}.runAsNonRoot true and not overridden {who}"
            )
        if sc.get("runAsUser") == 0:
            yield f"Running as Non-root user: {sc_path}.runAsUser must not be 0 {who}"
        if not windows:
            seccomp = (sc.get("seccompProfile") or {}).get("type")
            if seccomp is None and pod_seccomp is None:
                yield (
                    f"Seccomp: {sc_path}.seccompProfile.type (or {psc_path}.seccompProfile.type)"
                    f" must be RuntimeDefault or Localhost {who}"
                )
            elif seccomp is not None and seccomp not in SECCOMP_RESTRICTED:
                yield (
                    f"Seccomp: {sc_path}.seccompProfile.type must be RuntimeDefault or Localhost"
                    f" {who}"
                )
            caps: Mapping[str, Any] = sc.get("capabilities") or {}
            if "ALL" not in [str(x) for x in caps.get("drop") or []]:
                yield f"Capabilities: {sc_path}.capabilities.drop must include ALL {who}"
            extra = sorted({str(x) for x in caps.get("add") or []} - RESTRICTED_CAPABILITIES)
            if extra:
                yield (
                    f"Capabilities: {sc_path}.capabilities.add may only add NET_BIND_SERVICE,"
                    f" not {', '.join(extra)} {who}"
                )


def _apparmor(sc: Mapping[str, Any], path: str) -> Iterator[str]:
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        yield f"AppArmor: {path}.appArmorProfile.type must not be Unconfined"


def _selinux(sc: Mapping[str, Any], path: str) -> Iterator[str]:
    opts: Mapping[str, Any] = sc.get("seLinuxOptions") or {}
    if opts.get("type", "") not in SELINUX_TYPES:
        yield f"SELinux: {path}.seLinuxOptions.type {opts.get('type')!r} is not allowed"
    for field in ("user", "role"):
        if opts.get(field, ""):
            yield f"SELinux: {path}.seLinuxOptions.{field} must be unset"
