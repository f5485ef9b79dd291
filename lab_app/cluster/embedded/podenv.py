"""A container's environment as the kubelet builds it: a clean base, then ``envFrom``, ``env``.

Why a module of its own: the resolution is pure (a pod's spec + the applied ConfigMaps in,
a dict out) and its failure is a pod state -- a missing ConfigMap or key is Kubernetes'
``CreateContainerConfigError``: the pod waits and retries when a ConfigMap is applied, it
does not crash. Supported: ``configMapRef`` (``envFrom``), ``value``, ``fieldRef``,
``configMapKeyRef`` and ``resourceFieldRef`` (``limits.memory``) in ``env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab_app.cluster.embedded.pods import Pod


class ContainerConfigError(Exception):
    """The pod cannot start yet (a missing ConfigMap): Kubernetes' CreateContainerConfigError."""


def base_environment(pod: Pod) -> dict[str, str]:
    """What every container gets before the manifest's env: a clean, container-like env."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(pod.workdir),
        "TMPDIR": str(pod.workdir),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOSTNAME": pod.name,
        "PYTHONPATH": str(pod.image.root),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    return env


def resolve_env(
    pod: Pod,
    configmaps: Mapping[str, Mapping[str, Any]],
    namespace: str,
) -> dict[str, str]:
    """env + envFrom as the kubelet resolves them (raises ContainerConfigError if missing)."""
    env = base_environment(pod)
    c = pod.template.container
    for item in c.env_from:
        ref = item.get("configMapRef")
        if ref is None:
            raise ContainerConfigError(f"envFrom {dict(item)} is not supported (only configMapRef)")
        cm = configmaps.get(ref.get("name", ""))
        if cm is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'configmap "{ref.get("name")}" not found')
        prefix = str(item.get("prefix", ""))
        for k, v in (cm.get("data") or {}).items():
            env[prefix + str(k)] = str(v)
    for item in c.env:
        name = str(item["name"])
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath")
            env[name] = {
                "metadata.name": pod.name,
                "metadata.namespace": namespace,
                "metadata.uid": pod.name,
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
                "spec.nodeName": "zdlab-embedded",
                "spec.serviceAccountName": "default",
            }.get(path, "")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            cm = configmaps.get(ref.get("name", ""))
            value = (cm.get("data") or {}).get(ref.get("key")) if cm else None
            if value is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(
                    f'configmap "{ref.get("name")}" key "{ref.get("key")}" not found'
                )
            env[name] = str(value)
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            if ref.get("resource") == "limits.memory" and c.memory_limit:
                from lab_app.manifests import parse_quantity

                divisor = float(parse_quantity(ref.get("divisor", 1)) or 1)
                env[name] = str(int(-(-c.memory_limit // divisor)))
            else:
                env[name] = "0"
        else:
            env[name] = ""
    return env
