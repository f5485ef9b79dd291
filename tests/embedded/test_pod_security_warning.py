"""Pod Security admission on the embedded backend: a workload that breaks the namespace's
level is admitted with the API server's warning, and the lab's own manifests draw none."""

from __future__ import annotations

from cluster_testlib import manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind


def _warnings(c: EmbeddedCluster) -> list[str]:
    return [
        e.message
        for e in c.events()
        if e.kind == EventKind.CONFIG_WARNING and e.data.get("reason") == "PodSecurity"
    ]


async def test_a_deployment_breaking_restricted_is_admitted_with_a_warning(
    lab_cluster: EmbeddedCluster,
) -> None:
    c = lab_cluster
    await c.apply(manifest("namespace.yaml"))  # enforce + warn: restricted
    await c.apply(manifest("configmap.yaml"))
    await c.apply(manifest("deployment.yaml"))
    assert _warnings(c) == []  # the lab's manifests pass "restricted"
    escalating = manifest("deployment-v3.yaml")
    container = escalating["spec"]["template"]["spec"]["containers"][0]
    container.setdefault("securityContext", {})["allowPrivilegeEscalation"] = True
    await c.apply(escalating)  # admitted: Pod Security enforces on Pods, warns on workloads
    (said,) = _warnings(c)
    assert 'would violate PodSecurity "restricted:' in said, said
    assert "allowPrivilegeEscalation" in said, said
