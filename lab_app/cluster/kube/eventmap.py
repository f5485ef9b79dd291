"""Turn what Kubernetes reports (pod, EndpointSlice and Deployment changes, core Events)
into the lab's ``EventKind`` timeline, the same kinds the embedded backend emits.

Watches deliver whole objects, not transitions, so each tracker keeps the last state it
saw per object and emits an event for every transition that matters for a rollout
(a pod became ready, an endpoint left the rotation, a container exited...). Event times
are the wall clock when the change reached the lab (``time.time()``), the clock the load
generator stamps requests with; the server's own, second-granularity timestamp is kept in
``data["server_time"]`` where the object has one.

Sources, chosen so no kind is reported twice:
- pod watch: PodCreated, PodStarted, PodReady/PodNotReady, PodTerminating, ContainerExited,
  OOMKilled, Restarted, SidecarExited, PodDeleted;
- EndpointSlice watch: EndpointAdded/EndpointRemoved (per Service and pod);
- Deployment watch: RolloutStarted/RolloutComplete, Scaled;
- core Events: Killing -> PreStopStarted (container with a preStop hook) or SIGTERM
  (without) or SidecarDrainStarted (istio-proxy), Unhealthy -> ProbeFailed, OOMKilling ->
  OOMKilled; a few others (BackOff, Pulled, Started, FailedPreStopHook...) -> Note.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from lab_app.cluster.events import Event, EventKind
from lab_app.cluster.kube.objects import SIDECAR, all_statuses, meta, name_of, pod_ready
from lab_app.cluster.kube.rollout import rollout_status
from lab_app.errors import RolloutTimeoutError

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# core Events that become a Note (with data["reason"]); all others are ignored
NOTE_REASONS = frozenset(
    {
        "BackOff",
        "Pulled",
        "Started",
        "Failed",
        "FailedScheduling",
        "FailedPreStopHook",
        "FailedPostStartHook",
        "FailedCreate",
        "FailedMount",
        "Evicted",
        "ErrImagePull",
        "ExceededGracePeriod",
        "ScalingReplicaSet",
        "SuccessfulRescale",
        "FailedGetResourceMetric",
        "FailedComputeMetricsReplicas",
        "ProgressDeadlineExceeded",
    }
)
_FIELD_PATH_RE = re.compile(r"spec\.(?:initContainers|containers|ephemeralContainers)\{(.+)\}")


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _pod_ref(name: str) -> str:
    return f"pod/{name}"


def _sidecar_ref(pod: str) -> str:
    return f"proxy/{pod}-sidecar"


@dataclass(frozen=True)
class ContainerSnap:
    restarts: int = 0
    started_at: float | None = None  # state.running.startedAt
    terminated: tuple[str, int | None, float | None] | None = None  # reason, exit, finished


@dataclass(frozen=True)
class PodSnap:
    ready: bool = False
    deleting: bool = False
    phase: str = ""
    containers: dict[str, ContainerSnap] = field(default_factory=dict)


def _snap(pod: k8s.V1Pod) -> PodSnap:
    containers: dict[str, ContainerSnap] = {}
    for status in all_statuses(pod):
        state = status.state
        running = state.running if state else None
        terminated = state.terminated if state else None
        containers[status.name] = ContainerSnap(
            restarts=status.restart_count or 0,
            started_at=_stamp(running.started_at) if running else None,
            terminated=(
                (terminated.reason or "", terminated.exit_code, _stamp(terminated.finished_at))
                if terminated
                else None
            ),
        )
    return PodSnap(
        ready=pod_ready(pod),
        deleting=meta(pod).deletion_timestamp is not None,
        phase=(pod.status.phase if pod.status else "") or "",
        containers=containers,
    )


class PodTracker:
    """Pod lifecycle transitions from successive pod objects of a watch."""

    def __init__(self) -> None:
        self._snaps: dict[str, PodSnap] = {}
        self._prestop: dict[str, set[str]] = {}

    def has_prestop(self, pod: str, container: str) -> bool:
        """Whether ``container`` of ``pod`` has a preStop hook (so Killing starts it)."""
        return container in self._prestop.get(pod, set())

    def _remember_spec(self, pod: k8s.V1Pod) -> None:
        hooks = set()
        for container in (pod.spec.containers if pod.spec else None) or []:
            if container.lifecycle and container.lifecycle.pre_stop:
                hooks.add(container.name)
        self._prestop[name_of(pod)] = hooks

    def resync(self, pods: list[k8s.V1Pod], now: float, *, initial: bool) -> list[Event]:
        """A fresh list: seed silently (``initial``) or diff against what was known."""
        events: list[Event] = []
        seen = set()
        for pod in pods:
            seen.add(name_of(pod))
            if initial:
                self._remember_spec(pod)
                self._snaps[name_of(pod)] = _snap(pod)
            else:
                kind = "MODIFIED" if name_of(pod) in self._snaps else "ADDED"
                events += self.update(kind, pod, now)
        for name in list(self._snaps):
            if name not in seen:
                events.append(Event(EventKind.POD_DELETED, _pod_ref(name), "gone", now))
                self._forget(name)
        return events

    def _forget(self, name: str) -> None:
        self._snaps.pop(name, None)
        self._prestop.pop(name, None)

    def update(self, kind: str, pod: k8s.V1Pod, now: float) -> list[Event]:
        """Events for one watch event (``ADDED`` / ``MODIFIED`` / ``DELETED``) of a pod."""
        name = name_of(pod)
        events: list[Event] = []
        previous = self._snaps.get(name)
        if previous is None:
            if kind == "DELETED":
                return []
            node = pod.spec.node_name if pod.spec else None
            events.append(
                Event(
                    EventKind.POD_CREATED,
                    _pod_ref(name),
                    f"on {node}" if node else "",
                    now,
                    {"labels": dict(meta(pod).labels or {})},
                )
            )
            previous = PodSnap()
        self._remember_spec(pod)
        current = _snap(pod)
        events += self._diff(name, pod, previous, current, now)
        if kind == "DELETED":
            events.append(Event(EventKind.POD_DELETED, _pod_ref(name), "", now))
            self._forget(name)
        else:
            self._snaps[name] = current
        return events

    def _diff(
        self, name: str, pod: k8s.V1Pod, old: PodSnap, new: PodSnap, now: float
    ) -> list[Event]:
        ref = _pod_ref(name)
        events: list[Event] = []
        if new.deleting and not old.deleting:
            grace = meta(pod).deletion_grace_period_seconds
            events.append(
                Event(
                    EventKind.POD_TERMINATING,
                    ref,
                    f"grace period {grace} s" if grace is not None else "",
                    now,
                    {
                        "grace_seconds": grace,
                        "server_time": _stamp(meta(pod).deletion_timestamp),
                    },
                )
            )
        for container, snap in new.containers.items():
            events += self._container_diff(
                ref, name, container, old.containers.get(container), snap, pod, now
            )
        if new.ready and not old.ready:
            events.append(Event(EventKind.POD_READY, ref, "", now))
        elif old.ready and not new.ready:
            why = "terminating" if new.deleting else "readiness failing"
            events.append(Event(EventKind.POD_NOT_READY, ref, why, now, {"deleting": new.deleting}))
        return events

    def _container_diff(
        self,
        ref: str,
        pod_name: str,
        container: str,
        old: ContainerSnap | None,
        new: ContainerSnap,
        pod: k8s.V1Pod,
        now: float,
    ) -> list[Event]:
        old = old or ContainerSnap()
        sidecar = container == SIDECAR
        events: list[Event] = []
        exited: tuple[str, int | None, float | None] | None = None
        if new.terminated and new.terminated != old.terminated:
            exited = new.terminated
        elif new.restarts > old.restarts and not old.terminated:
            # restarted before we saw it stopped: the reason is in lastState
            exited = _last_terminated(pod, container)
        if exited is not None:
            reason, code, finished = exited
            data: dict[str, Any] = {"container": container, "exit_code": code, "reason": reason}
            data["server_time"] = finished
            if sidecar:
                events.append(
                    Event(EventKind.SIDECAR_EXITED, _sidecar_ref(pod_name), reason, now, data)
                )
            elif reason == "OOMKilled":
                events.append(Event(EventKind.OOM_KILLED, ref, f"exit {code}", now, data))
            else:
                message = f"{container} exit {code}" + (f" ({reason})" if reason else "")
                events.append(Event(EventKind.CONTAINER_EXITED, ref, message, now, data))
        if new.restarts > old.restarts:
            events.append(
                Event(
                    EventKind.RESTARTED,
                    _sidecar_ref(pod_name) if sidecar else ref,
                    f"{container} restart #{new.restarts}",
                    now,
                    {"container": container, "restarts": new.restarts},
                )
            )
        if new.started_at and new.started_at != old.started_at and not sidecar:
            events.append(
                Event(
                    EventKind.POD_STARTED,
                    ref,
                    container,
                    now,
                    {"container": container, "server_time": new.started_at},
                )
            )
        return events


def _last_terminated(pod: k8s.V1Pod, container: str) -> tuple[str, int | None, float | None]:
    for status in all_statuses(pod):
        if status.name == container and status.last_state and status.last_state.terminated:
            term = status.last_state.terminated
            return (term.reason or "", term.exit_code, _stamp(term.finished_at))
    return ("", None, None)


class EndpointTracker:
    """Endpoints entering and leaving a Service's rotation, from EndpointSlices.

    An endpoint is in rotation when its ``ready`` condition is true (unset counts as
    ready, as the API documents). A pod's endpoint is identified by Service and pod name
    (address when there is no targetRef), united over all slices of the Service, so an
    endpoint moving between slices is not reported as removed and added.
    """

    def __init__(self) -> None:
        self._slices: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}

    def _members(self, service: str) -> dict[str, dict[str, Any]]:
        members: dict[str, dict[str, Any]] = {}
        for svc, endpoints in self._slices.values():
            if svc == service:
                for key, info in endpoints.items():
                    if info["ready"] or key not in members:
                        members[key] = info
        return members

    @staticmethod
    def _endpoints(eps: k8s.V1EndpointSlice) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        for endpoint in eps.endpoints or []:
            conditions = endpoint.conditions or k8s.V1EndpointConditions()
            target = endpoint.target_ref
            address = (endpoint.addresses or [""])[0]
            is_pod = target is not None and target.kind == "Pod" and target.name
            key = _pod_ref(str(target.name)) if target and is_pod else f"ip/{address}"
            result[key] = {
                "address": address,
                "ready": conditions.ready is not False,
                "serving": conditions.serving is not False,
                "terminating": bool(conditions.terminating),
            }
        return result

    def resync(
        self, slices: list[k8s.V1EndpointSlice], now: float, *, initial: bool
    ) -> list[Event]:
        if initial:
            for eps in slices:
                self._store(eps)
            return []
        events: list[Event] = []
        names = {name_of(eps) for eps in slices}
        for eps in slices:
            events += self.update("MODIFIED", eps, now)
        for name in list(self._slices):
            if name not in names:
                events += self._replace(name, None, now)
        return events

    def _store(self, eps: k8s.V1EndpointSlice) -> None:
        service = (meta(eps).labels or {}).get(SERVICE_NAME_LABEL, "")
        self._slices[name_of(eps)] = (service, self._endpoints(eps))

    def update(self, kind: str, eps: k8s.V1EndpointSlice, now: float) -> list[Event]:
        return self._replace(name_of(eps), None if kind == "DELETED" else eps, now)

    def _replace(self, name: str, eps: k8s.V1EndpointSlice | None, now: float) -> list[Event]:
        services = set()
        if name in self._slices:
            services.add(self._slices[name][0])
        if eps is not None:
            services.add((meta(eps).labels or {}).get(SERVICE_NAME_LABEL, ""))
        before = {svc: self._members(svc) for svc in services}
        if eps is None:
            self._slices.pop(name, None)
        else:
            self._store(eps)
        events: list[Event] = []
        for svc in sorted(services):
            after = self._members(svc)
            old = before[svc]
            for key in sorted(set(old) | set(after)):
                was = old.get(key, {}).get("ready", False)
                now_info = after.get(key)
                is_ready = bool(now_info and now_info["ready"])
                info = now_info or old.get(key, {})
                data = {"service": svc, **info, "slice": name}
                if is_ready and not was:
                    events.append(
                        Event(EventKind.ENDPOINT_ADDED, key, f"{svc} {info['address']}", now, data)
                    )
                elif was and not is_ready:
                    why = "terminating" if info.get("terminating") else "not ready"
                    if now_info is None:
                        why = "gone"
                    events.append(
                        Event(
                            EventKind.ENDPOINT_REMOVED,
                            key,
                            f"{svc} {info['address']} ({why})",
                            now,
                            data,
                        )
                    )
        return events


@dataclass(frozen=True)
class DeploymentSnap:
    replicas: int | None
    template: str
    done: bool
    failed: bool
    rolling: bool = False


def _template_key(deployment: k8s.V1Deployment) -> str:
    template = deployment.spec.template if deployment.spec else None
    return json.dumps(template.to_dict() if template else {}, sort_keys=True, default=str)


def _images(deployment: k8s.V1Deployment) -> list[str]:
    template = deployment.spec.template if deployment.spec else None
    spec = template.spec if template else None
    return [c.image or "" for c in (spec.containers if spec else None) or []]


class DeploymentTracker:
    """Rollouts starting and completing, and replica count changes, per Deployment."""

    def __init__(self) -> None:
        self._snaps: dict[str, DeploymentSnap] = {}

    @staticmethod
    def _snap(deployment: k8s.V1Deployment, rolling: bool) -> DeploymentSnap:
        try:
            done, failed = rollout_status(deployment).done, False
        except RolloutTimeoutError:
            done, failed = False, True
        replicas = deployment.spec.replicas if deployment.spec else None
        return DeploymentSnap(replicas, _template_key(deployment), done, failed, rolling)

    def resync(
        self, deployments: list[k8s.V1Deployment], now: float, *, initial: bool
    ) -> list[Event]:
        events: list[Event] = []
        names = set()
        for deployment in deployments:
            names.add(name_of(deployment))
            if initial:
                self._snaps[name_of(deployment)] = self._snap(deployment, False)
            else:
                events += self.update("MODIFIED", deployment, now)
        for name in list(self._snaps):
            if name not in names:
                self._snaps.pop(name)
        return events

    def update(self, kind: str, deployment: k8s.V1Deployment, now: float) -> list[Event]:
        name = name_of(deployment)
        ref = f"deployment/{name}"
        if kind == "DELETED":
            self._snaps.pop(name, None)
            return []
        old = self._snaps.get(name)
        events: list[Event] = []
        if old is None:
            new = self._snap(deployment, True)
            events.append(
                Event(
                    EventKind.ROLLOUT_STARTED, ref, "created", now, {"images": _images(deployment)}
                )
            )
        else:
            new = self._snap(deployment, old.rolling)
            if new.replicas != old.replicas:
                events.append(
                    Event(
                        EventKind.SCALED,
                        ref,
                        f"{old.replicas} -> {new.replicas}",
                        now,
                        {"from": old.replicas, "to": new.replicas},
                    )
                )
            if new.template != old.template:
                new = DeploymentSnap(new.replicas, new.template, new.done, new.failed, True)
                events.append(
                    Event(
                        EventKind.ROLLOUT_STARTED,
                        ref,
                        " ".join(_images(deployment)),
                        now,
                        {"images": _images(deployment)},
                    )
                )
            if new.failed and not old.failed:
                events.append(
                    Event(
                        EventKind.NOTE,
                        ref,
                        "progress deadline exceeded",
                        now,
                        {"reason": "ProgressDeadlineExceeded"},
                    )
                )
        if new.rolling and new.done:
            events.append(Event(EventKind.ROLLOUT_COMPLETE, ref, "", now))
            new = DeploymentSnap(new.replicas, new.template, new.done, new.failed, False)
        self._snaps[name] = new
        return events


def _count(event: k8s.CoreV1Event) -> int:
    if event.series is not None and event.series.count:
        return int(event.series.count)
    return int(event.count or 1)


def _event_time(event: k8s.CoreV1Event) -> float | None:
    when = event.event_time or event.last_timestamp or event.first_timestamp
    if isinstance(when, datetime):
        return when.timestamp()
    return None


class CoreEventMapper:
    """Kubernetes Events (``kubectl get events``) as lab events; repeats count once each."""

    def __init__(self, pods: PodTracker) -> None:
        self._pods = pods
        self._counts: dict[str, int] = {}

    def resync(self, events: list[k8s.CoreV1Event], now: float, *, initial: bool) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if initial:
                self._counts[meta(event).uid or name_of(event)] = _count(event)
            else:
                out += self.update("MODIFIED", event, now)
        return out

    def update(self, kind: str, event: k8s.CoreV1Event, now: float) -> list[Event]:
        key = meta(event).uid or name_of(event)
        if kind == "DELETED":
            self._counts.pop(key, None)
            return []
        count = _count(event)
        if kind != "ADDED" and count <= self._counts.get(key, 0):
            return []
        self._counts[key] = count
        mapped = self.map(event, now)
        return [mapped] if mapped else []

    def map(self, event: k8s.CoreV1Event, now: float) -> Event | None:
        """One core Event as a lab event, or ``None`` for reasons the lab ignores."""
        involved = event.involved_object
        kind = involved.kind if involved else ""
        name = (involved.name if involved else "") or ""
        match = _FIELD_PATH_RE.search((involved.field_path if involved else "") or "")
        container = match.group(1) if match else ""
        reason = event.reason or ""
        message = (event.message or "").strip()
        data: dict[str, Any] = {
            "reason": reason,
            "type": event.type or "",
            "server_time": _event_time(event),
            "count": _count(event),
        }
        if container:
            data["container"] = container
        obj = f"{kind.lower()}/{name}" if kind else name
        if kind == "Pod" and reason == "Killing":
            if container == SIDECAR:
                return Event(
                    EventKind.SIDECAR_DRAIN_STARTED, _sidecar_ref(name), message, now, data
                )
            if self._pods.has_prestop(name, container):
                return Event(EventKind.PRESTOP_STARTED, obj, message, now, data)
            return Event(EventKind.SIGTERM, obj, message, now, data)
        if reason == "Unhealthy":
            probe = message.split(" ", 1)[0].lower() if message else ""
            data["probe"] = probe
            return Event(EventKind.PROBE_FAILED, obj, message, now, data)
        if reason in ("OOMKilling", "OOMKilled"):
            return Event(EventKind.OOM_KILLED, obj, message, now, data)
        if reason in NOTE_REASONS:
            return Event(EventKind.NOTE, obj, f"{reason}: {message}", now, data)
        return None
