"""Pod Security admission: what the API server does with a namespace's Pod Security labels.

Follows Kubernetes' built-in Pod Security admission (``k8s.io/pod-security-admission``,
docs "Pod Security Admission"). A namespace chooses, per mode, a level of the Pod Security
Standards and the version of the standard::

    pod-security.kubernetes.io/<MODE>: privileged | baseline | restricted
    pod-security.kubernetes.io/<MODE>-version: latest | v1.<minor>

The modes act differently, and differently on Pods and on workloads (an object with a pod
template: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob...):

- ``enforce``: a Pod that violates the level is refused (``pods "x" is forbidden: violates
  PodSecurity "restricted:latest": ...``). A workload is *not* refused: its controller
  then fails to create pods (``FailedCreate`` events), so enforce is not evaluated for it.
- ``warn``: the request succeeds with a warning (``Warning: would violate PodSecurity
  ...``), for Pods and workloads alike; not for a Pod already refused by ``enforce``
  ("avoid adding warnings to a request we're already going to reject").
- ``audit``: the request succeeds and the audit event is annotated; Pods and workloads.

Unset modes are ``privileged`` (the API server's default configuration), which checks
nothing. An unparsable level fails closed for ``enforce`` (``restricted``) and open for
``warn``/``audit`` (``privileged``); an unparsable version means ``latest``, as
``PolicyToEvaluate`` does. The controls themselves are those of
:mod:`lab_app.manifests.pod_security_standards`, policy version v1.33, whatever version is
pinned (the lab targets one Kubernetes version).

A pure function: :func:`check` takes the Namespace's labels and the object and returns the
violations; the caller refuses (``Violation.refuses``) or warns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lab_app.manifests.pod_security_standards import (
    WORKLOAD_KINDS,
    check_baseline,
    check_restricted,
)

Mode = Literal["enforce", "warn", "audit"]
Level = Literal["privileged", "baseline", "restricted"]

MODES: tuple[Mode, ...] = ("enforce", "warn", "audit")
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
LABEL_PREFIX = "pod-security.kubernetes.io/"
_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)", re.ASCII)


@dataclass(frozen=True)
class Violation:
    """One control a pod (template) breaks, under one mode of the namespace's policy."""

    mode: Mode
    level: Level  # baseline or restricted
    version: str  # "latest" or "v1.<minor>", as the namespace pinned it
    finding: str  # "<Control>: <dotted field> <problem>" (pod_security_standards)

    @property
    def refuses(self) -> bool:
        """Whether the API server refuses the request for it (``enforce`` on a Pod)."""
        return self.mode == "enforce"

    @property
    def policy(self) -> str:
        """``restricted:latest``, as the API server names the policy in its messages."""
        return f"{self.level}:{self.version}"


def policy(namespace_labels: Mapping[str, str] | None) -> dict[Mode, tuple[Level, str]]:
    """``{mode: (level, version)}`` from a Namespace's labels (``PolicyToEvaluate``)."""
    labels = namespace_labels or {}
    out: dict[Mode, tuple[Level, str]] = {}
    for mode in MODES:
        level: Level = "privileged"
        raw = labels.get(f"{LABEL_PREFIX}{mode}")
        if raw is not None:
            parsed = next((lv for lv in LEVELS if lv == raw), None)
            # fail closed for enforce, open for warn and audit
            level = parsed or ("restricted" if mode == "enforce" else "privileged")
        out[mode] = (level, _version(labels.get(f"{LABEL_PREFIX}{mode}-version")))
    return out


def check(namespace_labels: Mapping[str, str] | None, obj: Mapping[str, Any]) -> list[Violation]:
    """The violations of ``obj`` (a Pod or a workload) under the namespace's labels.

    Empty when the namespace checks nothing or ``obj`` passes, and for kinds without a pod
    template (Service, ConfigMap...), which Pod Security admission does not look at.
    ``enforce`` violations come only for a Pod (see module doc); a refused Pod gets no
    ``warn`` violations. Order: enforce, warn, audit, each in the controls' order.
    """
    kind = obj.get("kind")
    if kind not in WORKLOAD_KINDS or kind == "PodTemplate":
        return []
    is_pod = kind == "Pod"
    found: list[Violation] = []
    for mode, (level, version) in policy(namespace_labels).items():
        if level == "privileged" or (mode == "enforce" and not is_pod):
            continue
        if mode == "warn" and any(v.refuses for v in found):
            continue
        findings = check_restricted(obj) if level == "restricted" else check_baseline(obj)
        found.extend(Violation(mode, level, version, finding) for finding in findings)
    return found


def message(violations: list[Violation], mode: Mode = "enforce") -> str:
    """The API server's sentence for the violations of one mode, e.g. ``violates PodSecurity
    "restricted:latest": <finding>; <finding>`` (``would violate`` for warn and audit);
    empty when there are none."""
    chosen = [v for v in violations if v.mode == mode]
    if not chosen:
        return ""
    verb = "violates" if mode == "enforce" else "would violate"
    return f'{verb} PodSecurity "{chosen[0].policy}": ' + "; ".join(v.finding for v in chosen)


def _version(raw: str | None) -> str:
    """``latest`` or ``v1.<minor>``; anything else reads as ``latest`` (``ParseVersion``)."""
    return raw if raw is not None and _VERSION.fullmatch(raw) else "latest"
