"""The deployment controller's rolling update keeps maxSurge/maxUnavailable at every step.

Pods here are plain records the test makes ready or gone tick by tick, so the controller's
arithmetic is checked over whole rollouts without processes; the end-to-end tests run it
with real pods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from cluster_testlib import manifest

from lab_app.cluster.embedded.deployments import DeploymentController
from lab_app.cluster.embedded.images import Image
from lab_app.cluster.embedded.specs import parse_deployment


@dataclass
class FakePod:
    name: str
    rs: str
    created: float = field(default_factory=time.time)
    ready: bool = False
    ready_since: float | None = None
    terminating: bool = False
    deleted: bool = False
    restarts: int = 0
    age: int = 0


def _spec(surge, unavailable, replicas, image="zdlab/demo:v1"):
    doc = manifest("deployment.yaml")
    doc["spec"]["replicas"] = replicas
    doc["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return doc, parse_deployment(doc, source="test")


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas"),
    [(1, 0, 2), ("25%", "25%", 2), ("25%", "25%", 8), (0, 1, 3), (2, 2, 5), ("50%", 0, 4)],
)
def test_rolling_update_respects_surge_and_unavailable(surge, unavailable, replicas) -> None:
    pods: list[FakePod] = []
    events: list[tuple] = []

    def create(dep, rs):
        pod = FakePod(name=f"{rs.name}-{len(pods)}", rs=rs.hash)
        pods.append(pod)
        return pod

    def delete(pod):
        pod.terminating = True
        pod.age = 0

    ctl = DeploymentController(
        emit=lambda *a, **k: events.append(a), create_pod=create, delete_pod=delete
    )
    image = Image("v1", "a" * 64, root=None, built_at=0)  # type: ignore[arg-type]
    doc, spec = _spec(surge, unavailable, replicas)
    ctl.upsert(spec, image, source="test", raw=doc)

    def tick() -> None:
        for _ in range(5):
            if not ctl.reconcile():
                break
        for p in pods:
            p.age += 1
            if p.terminating and p.age >= 2:
                p.deleted, p.ready = True, False
            elif not p.terminating and not p.ready and p.age >= 2:
                p.ready, p.ready_since = True, time.time() - 1

    for _ in range(10):
        tick()
    dep = ctl.deployments["zero-downtime-rollingupdate"]
    assert dep.rollout_complete()
    max_surge, max_unavailable = spec.strategy.resolve(replicas)
    doc2, spec2 = _spec(surge, unavailable, replicas, image="zdlab/demo:v2")
    ctl.upsert(spec2, image, source="test", raw=doc2)
    new_hash = spec2.template.hash
    for _ in range(200):
        tick()
        active = [p for p in pods if not p.deleted and not p.terminating]
        ready = [p for p in active if p.ready]
        assert len(active) <= replicas + max_surge, "maxSurge exceeded"
        assert len(ready) >= replicas - max_unavailable, "maxUnavailable exceeded"
        if dep.rollout_complete() and not [p for p in pods if not p.deleted and p.rs != new_hash]:
            break
    else:
        pytest.fail("the rollout never completed")
    assert all(p.rs == new_hash for p in pods if not p.deleted)
    ctl.reconcile()  # the pass that notices completion emits RolloutComplete
    kinds = [e[0] for e in events]
    assert "RolloutStarted" in kinds and kinds.count("RolloutComplete") == 2
