"""The Deployment and ReplicaSet controllers, with Kubernetes' rolling-update arithmetic.

Why the real algorithm and not "start new, stop old": the failure modes the lab shows depend
on *when* an old pod is deleted relative to a new one becoming ready, and that is decided by
``maxSurge``/``maxUnavailable``. This is a port of the deployment controller's
``reconcileNewReplicaSet`` / ``reconcileOldReplicaSets`` (k8s.io/kubernetes
pkg/controller/deployment/rolling.go), including its accounting quirks: pod counts are the
ReplicaSets' *desired* replicas, availability counts ready pods (after ``minReadySeconds``),
and terminating pods count for nothing -- so a rollout is "complete" while old pods are still
shutting down, exactly as ``kubectl rollout status`` reports it.

The rollout arithmetic itself is in pure functions (``resolve_fenceposts``, ``max_surge``,
``max_unavailable``, ``new_rs_new_replicas``) that follow
pkg/controller/deployment/util/deployment_util.go (Kubernetes 1.34) case for case: maxSurge
rounds up, maxUnavailable rounds down, both 0 -> maxUnavailable 1, and maxUnavailable is
clamped to the replica count (0 replicas -> 0). tests/embedded/test_deployment_arithmetic.py
runs upstream's table tests against them.

A ReplicaSet here is the set of pods of one pod-template-hash; pods are named
``DEPLOYMENT-<hash>-<5 chars>``. Which pod a scale-down removes follows the ReplicaSet
controller's ranking: not-ready first, then the most recently ready, then the most restarts,
then the newest.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab_app.cluster.embedded.images import Image
from lab_app.cluster.embedded.pods import Pod
from lab_app.cluster.embedded.specs import DeploymentSpec, PodTemplate, Strategy
from lab_app.cluster.events import EventKind

Emit = Callable[..., Any]
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PERCENT = re.compile(r"^\s*(\d+)%\s*$")


# ---------------------------------------------------------------- rollout arithmetic
# Pure functions, named after their upstream counterparts in
# k8s.io/kubernetes pkg/controller/deployment/util/deployment_util.go and
# k8s.io/apimachinery pkg/util/intstr (GetScaledValueFromIntOrPercent).


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An IntOrString as a pod count: an int as is, ``"N%"`` of ``total`` rounded up or down.

    ``None`` (the field unset) counts as 0, as ``intstr.ValueOrDefault(..., 0)`` does; a string
    that is not a percentage raises ``ValueError`` (upstream returns an error).
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    m = _PERCENT.match(str(value))
    if m is None:
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage")
    scaled = int(m.group(1)) * total
    return -(-scaled // 100) if round_up else scaled // 100


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` replicas: surge rounds up, unavailable down, and
    if both come out 0 unavailable is 1 (or the rollout could never move). No clamping here:
    ``max_unavailable()`` clamps."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        return 0, 1
    return surge, unavailable


def max_surge(strategy: Strategy, replicas: int) -> int:
    """MaxSurge: the pods a rolling update may run above ``replicas`` (0 for Recreate)."""
    if strategy.type != "RollingUpdate":
        return 0
    return resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, replicas)[0]


def max_unavailable(strategy: Strategy, replicas: int) -> int:
    """MaxUnavailable: the resolved value clamped to ``replicas`` (0 replicas or Recreate: 0)."""
    if strategy.type != "RollingUpdate" or replicas == 0:
        return 0
    unavailable = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, replicas)[1]
    return min(unavailable, replicas)


def new_rs_new_replicas(
    strategy: Strategy, replicas: int, all_rs_replicas: Iterable[int], new_rs_replicas: int
) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may scale up now.

    RollingUpdate: up to ``replicas + maxSurge`` pods over all ReplicaSets (their desired
    counts, ``all_rs_replicas``), never above ``replicas``, never down; Recreate: ``replicas``.
    """
    if strategy.type == "Recreate":
        return replicas
    if strategy.type != "RollingUpdate":
        raise ValueError(f"deployment strategy {strategy.type!r} isn't supported")
    surge = scaled_value(strategy.max_surge, replicas, round_up=True)
    current = sum(all_rs_replicas)
    max_total = replicas + surge
    if current >= max_total:
        return new_rs_replicas
    return new_rs_replicas + min(max_total - current, replicas - new_rs_replicas)


@dataclass
class ReplicaSet:
    deployment: str
    hash: str
    template: PodTemplate
    image: Image
    replicas: int = 0
    created: float = field(default_factory=time.time)
    revision: int = 0
    pods: list[Pod] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.deployment}-{self.hash}"

    def active(self) -> list[Pod]:
        """Pods that count: not terminating, not deleted (what RS ``status.replicas`` counts)."""
        return [p for p in self.pods if not p.terminating and not p.deleted]

    def available(self, min_ready_seconds: float, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return sum(
            1
            for p in self.active()
            if p.ready and p.ready_since is not None and now - p.ready_since >= min_ready_seconds
        )

    def new_pod_name(self, taken: Mapping[str, Any]) -> str:
        while True:
            suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
            name = f"{self.name}-{suffix}"
            if name not in taken:
                return name


@dataclass
class Deployment:
    spec: DeploymentSpec
    source: str
    raw: dict[str, Any]
    replica_sets: dict[str, ReplicaSet] = field(default_factory=dict)
    revision: int = 0
    complete_for: str | None = None  # template hash the last RolloutComplete was emitted for
    rollout_started: float | None = None
    deleting: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def new_rs(self) -> ReplicaSet | None:
        return self.replica_sets.get(self.spec.template.hash)

    def old_rss(self) -> list[ReplicaSet]:
        new = self.spec.template.hash
        return sorted(
            (rs for h, rs in self.replica_sets.items() if h != new), key=lambda rs: rs.created
        )

    def all_pods(self) -> list[Pod]:
        return [p for rs in self.replica_sets.values() for p in rs.pods if not p.deleted]

    def status(self) -> dict[str, int]:
        """What ``kubectl get deployment`` / ``rollout status`` look at."""
        new = self.new_rs
        mrs = self.spec.min_ready_seconds
        return {
            "replicas": self.spec.replicas,
            "current": sum(len(rs.active()) for rs in self.replica_sets.values()),
            "updated": len(new.active()) if new else 0,
            "ready": sum(1 for rs in self.replica_sets.values() for p in rs.active() if p.ready),
            "available": sum(rs.available(mrs) for rs in self.replica_sets.values()),
            "updated_available": new.available(mrs) if new else 0,
            "terminating": sum(
                1
                for rs in self.replica_sets.values()
                for p in rs.pods
                if p.terminating and not p.deleted
            ),
        }

    def rollout_complete(self) -> bool:
        s = self.status()
        r = self.spec.replicas
        new = self.new_rs
        return (
            new is not None
            and new.replicas == r
            and s["updated"] == r
            and s["current"] == r
            and s["updated_available"] == r
        )


class DeploymentController:
    """Reconciles Deployments -> ReplicaSets -> pods. ``reconcile()`` is cheap and idempotent."""

    def __init__(
        self,
        *,
        emit: Emit,
        create_pod: Callable[[Deployment, ReplicaSet], Pod],
        delete_pod: Callable[[Pod], None],
    ) -> None:
        self.deployments: dict[str, Deployment] = {}
        self._emit = emit
        self._create_pod = create_pod
        self._delete_pod = delete_pod

    # -------------------------------------------------------------- spec changes

    def upsert(
        self, spec: DeploymentSpec, image: Image, *, source: str, raw: dict[str, Any]
    ) -> str:
        """Create or update a Deployment; returns 'created', 'configured' or 'unchanged'."""
        dep = self.deployments.get(spec.name)
        if dep is None:
            dep = Deployment(spec=spec, source=source, raw=raw)
            self.deployments[spec.name] = dep
            outcome = "created"
        else:
            outcome = "unchanged" if dep.raw == raw else "configured"
            old_hash = dep.spec.template.hash
            if dep.spec.replicas != spec.replicas:
                self._emit(
                    EventKind.SCALED,
                    f"deployment/{spec.name}",
                    f"replicas {dep.spec.replicas} -> {spec.replicas}",
                    {"from": dep.spec.replicas, "to": spec.replicas},
                )
            dep.spec, dep.source, dep.raw, dep.deleting = spec, source, raw, False
            if old_hash != spec.template.hash:
                dep.complete_for = None
        if spec.template.hash not in dep.replica_sets:
            dep.revision += 1
            dep.replica_sets[spec.template.hash] = ReplicaSet(
                deployment=spec.name,
                hash=spec.template.hash,
                template=spec.template,
                image=image,
                revision=dep.revision,
            )
            others = [rs for rs in dep.old_rss() if rs.replicas or rs.active()]
            if others:
                dep.rollout_started = time.time()
                self._emit(
                    EventKind.ROLLOUT_STARTED,
                    f"deployment/{spec.name}",
                    f"rolling out {image.short} (revision {dep.revision}, "
                    f"{spec.strategy.type}, maxSurge {spec.strategy.max_surge}, "
                    f"maxUnavailable {spec.strategy.max_unavailable})",
                    {
                        "image": image.ref,
                        "revision": dep.revision,
                        "template_hash": spec.template.hash,
                        "max_surge": max_surge(spec.strategy, spec.replicas),
                        "max_unavailable": max_unavailable(spec.strategy, spec.replicas),
                    },
                )
        else:
            rs = dep.replica_sets[spec.template.hash]
            if rs.revision != dep.revision:  # a rollback to an existing ReplicaSet
                dep.revision += 1
                rs.revision = dep.revision
                dep.rollout_started = time.time()
                self._emit(
                    EventKind.ROLLOUT_STARTED,
                    f"deployment/{spec.name}",
                    f"rolling back to {rs.image.short} (revision {dep.revision})",
                    {"image": rs.image.ref, "revision": dep.revision},
                )
        return outcome

    def delete(self, name: str) -> bool:
        dep = self.deployments.get(name)
        if dep is None:
            return False
        dep.deleting = True
        for rs in dep.replica_sets.values():
            rs.replicas = 0
        return True

    # -------------------------------------------------------------- reconcile

    def reconcile(self) -> bool:
        """One pass over every Deployment; returns True if anything changed."""
        changed = False
        for name, dep in list(self.deployments.items()):
            if dep.deleting:
                changed |= self._sync_replica_sets(dep)
                if not dep.all_pods():
                    del self.deployments[name]
                continue
            if dep.spec.strategy.type == "Recreate":
                changed |= self._recreate(dep)
            else:
                changed |= self._rolling(dep)
            changed |= self._sync_replica_sets(dep)
            self._prune(dep)
            if dep.complete_for != dep.spec.template.hash and dep.rollout_complete():
                dep.complete_for = dep.spec.template.hash
                took = (
                    f" in {time.time() - dep.rollout_started:.1f}s" if dep.rollout_started else ""
                )
                self._emit(
                    EventKind.ROLLOUT_COMPLETE,
                    f"deployment/{name}",
                    f"{dep.spec.replicas} of {dep.spec.replicas} updated replicas available{took}",
                    {"revision": dep.revision, "image": dep.new_rs.image.ref if dep.new_rs else ""},
                )
                dep.rollout_started = None
        return changed

    def _scale(self, dep: Deployment, rs: ReplicaSet, replicas: int) -> bool:
        if rs.replicas == replicas:
            return False
        direction = "up" if replicas > rs.replicas else "down"
        self._emit(
            EventKind.SCALED,
            f"replicaset/{rs.name}",
            f"Scaled {direction} replica set {rs.name} to {replicas} from {rs.replicas}",
            {"deployment": dep.name, "from": rs.replicas, "to": replicas, "hash": rs.hash},
        )
        rs.replicas = replicas
        return True

    def _rolling(self, dep: Deployment) -> bool:
        new = dep.new_rs
        assert new is not None
        old = dep.old_rss()
        replicas = dep.spec.replicas
        strategy = dep.spec.strategy
        all_rs = [*old, new]
        # --- reconcileNewReplicaSet
        if new.replicas > replicas:
            return self._scale(dep, new, replicas)
        if new.replicas < replicas:
            target = new_rs_new_replicas(
                strategy, replicas, [rs.replicas for rs in all_rs], new.replicas
            )
            if target != new.replicas:
                return self._scale(dep, new, target)
        # --- reconcileOldReplicaSets
        if not any(rs.replicas for rs in old):
            return False
        mrs = dep.spec.min_ready_seconds
        all_count = sum(rs.replicas for rs in all_rs)
        min_available = replicas - max_unavailable(strategy, replicas)
        new_unavailable = new.replicas - new.available(mrs)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        changed = False
        # clean up unhealthy replicas of old ReplicaSets first
        cleaned = 0
        for rs in old:
            if cleaned >= max_scaled_down:
                break
            if rs.replicas == 0:
                continue
            unhealthy = rs.replicas - rs.available(mrs)
            if unhealthy <= 0:
                continue
            down = min(unhealthy, max_scaled_down - cleaned)
            changed |= self._scale(dep, rs, rs.replicas - down)
            cleaned += down
        # then scale down old ReplicaSets as far as availability allows
        available = sum(rs.available(mrs) for rs in all_rs)
        if available <= min_available:
            return changed
        budget = available - min_available
        done = 0
        for rs in old:
            if done >= budget:
                break
            if rs.replicas == 0:
                continue
            down = min(rs.replicas, budget - done)
            changed |= self._scale(dep, rs, rs.replicas - down)
            done += down
        return changed

    def _recreate(self, dep: Deployment) -> bool:
        new = dep.new_rs
        assert new is not None
        changed = False
        for rs in dep.old_rss():
            changed |= self._scale(dep, rs, 0)
        old_pods = [p for rs in dep.old_rss() for p in rs.pods if not p.deleted]
        if not old_pods:
            changed |= self._scale(dep, new, dep.spec.replicas)
        return changed

    def _sync_replica_sets(self, dep: Deployment) -> bool:
        """The ReplicaSet controller: make each RS's active pod count match its replicas."""
        changed = False
        for rs in dep.replica_sets.values():
            active = rs.active()
            diff = rs.replicas - len(active)
            if diff > 0:
                for _ in range(diff):
                    rs.pods.append(self._create_pod(dep, rs))
                changed = True
            elif diff < 0:
                for pod in sorted(active, key=_deletion_rank)[:-diff]:
                    self._delete_pod(pod)
                changed = True
        return changed

    def _prune(self, dep: Deployment) -> None:
        for rs in dep.replica_sets.values():
            rs.pods = [p for p in rs.pods if not p.deleted]


def _deletion_rank(pod: Pod) -> tuple[int, float, int, float]:
    """Sort key: the first pods are the ones a scale-down removes (k8s ActivePodsWithRanks)."""
    return (int(pod.ready), -(pod.ready_since or 0.0), -pod.restarts, -pod.created)
