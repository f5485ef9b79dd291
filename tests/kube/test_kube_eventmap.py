"""Kubernetes objects -> the lab's EventKind timeline (pods, EndpointSlices, Deployments,
core Events), from the client's own models and from raw watch event JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from lab_app.cluster.events import EventKind
from lab_app.cluster.kube.eventmap import (
    CoreEventMapper,
    DeploymentTracker,
    EndpointTracker,
    PodTracker,
)
from lab_app.cluster.kube.pods import pod_info

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def kinds(events):
    return [e.kind for e in events]


def pod(
    name="web-7d9-abc",
    *,
    ready=False,
    running=False,
    restarts=0,
    last=None,
    terminated=None,
    deleting=False,
    sidecar=True,
    prestop=True,
    sidecar_terminated=None,
):
    app_state = k8s.V1ContainerState()
    if running:
        app_state = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=T0))
    if terminated:
        app_state = k8s.V1ContainerState(terminated=terminated)
    statuses = [
        k8s.V1ContainerStatus(
            name="demo",
            image="zdlab/demo:v1",
            image_id="",
            ready=ready,
            restart_count=restarts,
            state=app_state,
            last_state=k8s.V1ContainerState(terminated=last) if last else None,
        )
    ]
    containers = [
        k8s.V1Container(
            name="demo",
            image="zdlab/demo:v1",
            ports=[k8s.V1ContainerPort(container_port=8080, name="http")],
            lifecycle=k8s.V1Lifecycle(
                pre_stop=k8s.V1LifecycleHandler(sleep=k8s.V1SleepAction(seconds=5))
            )
            if prestop
            else None,
        )
    ]
    if sidecar:
        containers.append(k8s.V1Container(name="istio-proxy", image="istio/proxyv2"))
        statuses.append(
            k8s.V1ContainerStatus(
                name="istio-proxy",
                image="istio/proxyv2",
                image_id="",
                ready=True,
                restart_count=0,
                state=k8s.V1ContainerState(terminated=sidecar_terminated)
                if sidecar_terminated
                else k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=T0)),
            )
        )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels={"app": "web", "version": "v1", "pod-template-hash": "7d9"},
            owner_references=[
                k8s.V1OwnerReference(
                    api_version="apps/v1", kind="ReplicaSet", name="web-7d9", uid="u"
                )
            ],
            deletion_timestamp=T0 if deleting else None,
            deletion_grace_period_seconds=32 if deleting else None,
            creation_timestamp=T0,
        ),
        spec=k8s.V1PodSpec(containers=containers, node_name="kind-control-plane"),
        status=k8s.V1PodStatus(
            phase="Running" if running else "Pending",
            pod_ip="10.244.0.7",
            conditions=[k8s.V1PodCondition(type="Ready", status="True" if ready else "False")],
            container_statuses=statuses,
        ),
    )


def test_pod_lifecycle_from_creation_to_deletion():
    tracker = PodTracker()
    assert kinds(tracker.update("ADDED", pod(), 1.0)) == [EventKind.POD_CREATED]
    started = tracker.update("MODIFIED", pod(running=True), 2.0)
    assert kinds(started) == [EventKind.POD_STARTED]
    assert started[0].obj == "pod/web-7d9-abc"
    assert started[0].t == 2.0
    assert started[0].data["server_time"] == T0.timestamp()
    assert kinds(tracker.update("MODIFIED", pod(running=True, ready=True), 3.0)) == [
        EventKind.POD_READY
    ]
    # no change, no event
    assert tracker.update("MODIFIED", pod(running=True, ready=True), 3.5) == []
    terminating = tracker.update("MODIFIED", pod(running=True, ready=False, deleting=True), 4.0)
    assert kinds(terminating) == [EventKind.POD_TERMINATING, EventKind.POD_NOT_READY]
    assert terminating[0].data["grace_seconds"] == 32
    assert terminating[1].message == "terminating"
    exited = k8s.V1ContainerStateTerminated(exit_code=0, reason="Completed", finished_at=T0)
    sidecar_exit = k8s.V1ContainerStateTerminated(exit_code=0, reason="Completed")
    gone = tracker.update(
        "DELETED",
        pod(terminated=exited, deleting=True, sidecar_terminated=sidecar_exit),
        5.0,
    )
    assert kinds(gone) == [
        EventKind.CONTAINER_EXITED,
        EventKind.SIDECAR_EXITED,
        EventKind.POD_DELETED,
    ]
    assert gone[0].data["exit_code"] == 0
    assert gone[1].obj == "proxy/web-7d9-abc-sidecar"
    # forgotten: a later event of the same name is a new pod
    assert kinds(tracker.update("ADDED", pod(), 6.0)) == [EventKind.POD_CREATED]


def test_oom_kill_seen_only_through_the_restart():
    tracker = PodTracker()
    tracker.resync([pod(running=True, ready=True)], 0.0, initial=True)
    oom = k8s.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled", finished_at=T0)
    events = tracker.update("MODIFIED", pod(running=True, ready=False, restarts=1, last=oom), 1.0)
    # the restarted container is not ready until its readiness probe passes again
    assert kinds(events) == [EventKind.OOM_KILLED, EventKind.RESTARTED, EventKind.POD_NOT_READY]
    assert events[0].data["exit_code"] == 137
    assert events[1].data["restarts"] == 1
    assert pod_info(pod(running=True, restarts=1, last=oom)).last_state == "OOMKilled"


def test_terminated_state_then_restart_is_reported_once():
    tracker = PodTracker()
    tracker.resync([pod(running=True, ready=True)], 0.0, initial=True)
    error = k8s.V1ContainerStateTerminated(exit_code=1, reason="Error", finished_at=T0)
    assert kinds(tracker.update("MODIFIED", pod(terminated=error), 1.0)) == [
        EventKind.CONTAINER_EXITED,
        EventKind.POD_NOT_READY,
    ]
    later = datetime(2025, 1, 1, 12, 0, 5, tzinfo=UTC)
    restarted = pod(running=True, restarts=1, last=error)
    restarted.status.container_statuses[0].state.running.started_at = later
    assert kinds(tracker.update("MODIFIED", restarted, 2.0)) == [
        EventKind.RESTARTED,
        EventKind.POD_STARTED,
    ]


def test_initial_list_is_silent_and_a_relist_diffs():
    tracker = PodTracker()
    assert tracker.resync([pod("a", running=True, ready=True), pod("b")], 0.0, initial=True) == []
    events = tracker.resync([pod("a", running=True, ready=False), pod("c")], 1.0, initial=False)
    assert sorted((e.kind, e.obj) for e in events) == sorted(
        [
            (EventKind.POD_NOT_READY, "pod/a"),
            (EventKind.POD_CREATED, "pod/c"),
            (EventKind.POD_DELETED, "pod/b"),
        ]
    )


def test_pod_from_a_raw_watch_event():
    raw = k8s.ApiClient().sanitize_for_serialization(pod(running=True, ready=True))
    line = json.dumps({"type": "ADDED", "object": raw})
    event = k8s_watch.Watch().unmarshal_event(line, "V1Pod")
    assert isinstance(event["object"], k8s.V1Pod)
    events = PodTracker().update(event["type"], event["object"], 1.0)
    assert kinds(events) == [EventKind.POD_CREATED, EventKind.POD_STARTED, EventKind.POD_READY]


def test_pod_info():
    info = pod_info(pod(running=True, ready=True, restarts=2, deleting=True))
    assert info.name == "web-7d9-abc"
    assert info.phase == "Terminating"
    assert info.ready
    assert info.restarts == 2
    assert info.image == "zdlab/demo:v1"
    assert info.deployment == "web"
    assert info.ip == "10.244.0.7"
    assert info.port == 8080
    assert info.sidecar
    assert info.extra["node"] == "kind-control-plane"
    plain = pod_info(pod(sidecar=False))
    assert not plain.sidecar
    assert plain.phase == "Pending"


def test_native_sidecar_counts_as_a_sidecar():
    p = pod(sidecar=False)
    p.spec.init_containers = [
        k8s.V1Container(name="istio-proxy", image="istio/proxyv2", restart_policy="Always")
    ]
    assert pod_info(p).sidecar


# --- EndpointSlices -----------------------------------------------------------------------
def endpoint_slice(name, endpoints, service="zero-downtime-rollingupdate"):
    return k8s.V1EndpointSlice(
        address_type="IPv4",
        metadata=k8s.V1ObjectMeta(name=name, labels={"kubernetes.io/service-name": service}),
        endpoints=[
            k8s.V1Endpoint(
                addresses=[ip],
                conditions=k8s.V1EndpointConditions(
                    ready=ready, serving=serving, terminating=terminating
                ),
                target_ref=k8s.V1ObjectReference(kind="Pod", name=pod_name),
            )
            for pod_name, ip, ready, serving, terminating in endpoints
        ],
    )


def test_endpoints_enter_and_leave_the_rotation():
    tracker = EndpointTracker()
    assert (
        tracker.resync(
            [endpoint_slice("s1", [("a", "10.0.0.1", True, True, False)])], 0.0, initial=True
        )
        == []
    )
    added = tracker.update(
        "MODIFIED",
        endpoint_slice(
            "s1", [("a", "10.0.0.1", True, True, False), ("b", "10.0.0.2", True, True, False)]
        ),
        1.0,
    )
    assert [(e.kind, e.obj) for e in added] == [(EventKind.ENDPOINT_ADDED, "pod/b")]
    assert added[0].data["service"] == "zero-downtime-rollingupdate"
    assert added[0].data["address"] == "10.0.0.2"
    # a terminating endpoint that still serves is out of the rotation
    removed = tracker.update(
        "MODIFIED",
        endpoint_slice(
            "s1", [("a", "10.0.0.1", False, True, True), ("b", "10.0.0.2", True, True, False)]
        ),
        2.0,
    )
    assert [(e.kind, e.obj) for e in removed] == [(EventKind.ENDPOINT_REMOVED, "pod/a")]
    assert "terminating" in removed[0].message
    assert removed[0].data["serving"] is True
    assert tracker.update("DELETED", endpoint_slice("s1", []), 3.0)[0].obj == "pod/b"


def test_an_endpoint_moving_between_slices_is_not_reported():
    tracker = EndpointTracker()
    tracker.resync(
        [endpoint_slice("s1", [("a", "10.0.0.1", True, True, False)])], 0.0, initial=True
    )
    assert (
        tracker.update("ADDED", endpoint_slice("s2", [("a", "10.0.0.1", True, True, False)]), 1.0)
        == []
    )
    assert tracker.update("DELETED", endpoint_slice("s1", []), 2.0) == []


def test_unset_ready_counts_as_ready():
    tracker = EndpointTracker()
    events = tracker.update(
        "ADDED", endpoint_slice("s1", [("a", "10.0.0.1", None, None, None)]), 1.0
    )
    assert kinds(events) == [EventKind.ENDPOINT_ADDED]


# --- Deployments --------------------------------------------------------------------------
def deployment(image="zdlab/demo:v1", replicas=2, generation=1, updated=2, available=2, total=2):
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="web", generation=generation),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels={"app": "web"}),
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="demo", image=image)])
            ),
        ),
        status=k8s.V1DeploymentStatus(
            observed_generation=generation,
            replicas=total,
            updated_replicas=updated,
            available_replicas=available,
        ),
    )


def test_rollout_started_and_complete():
    tracker = DeploymentTracker()
    assert tracker.resync([deployment()], 0.0, initial=True) == []
    started = tracker.update(
        "MODIFIED", deployment("zdlab/demo:v2", generation=2, updated=1, total=3), 1.0
    )
    assert kinds(started) == [EventKind.ROLLOUT_STARTED]
    assert started[0].obj == "deployment/web"
    assert started[0].data["images"] == ["zdlab/demo:v2"]
    assert (
        tracker.update(
            "MODIFIED", deployment("zdlab/demo:v2", generation=2, updated=2, total=3), 2.0
        )
        == []
    )
    done = tracker.update("MODIFIED", deployment("zdlab/demo:v2", generation=2), 3.0)
    assert kinds(done) == [EventKind.ROLLOUT_COMPLETE]
    assert tracker.update("MODIFIED", deployment("zdlab/demo:v2", generation=2), 4.0) == []


def test_scaling_is_reported_with_both_counts():
    tracker = DeploymentTracker()
    tracker.resync([deployment()], 0.0, initial=True)
    events = tracker.update("MODIFIED", deployment(replicas=4, generation=2, available=2), 1.0)
    assert kinds(events) == [EventKind.SCALED]
    assert events[0].data == {"from": 2, "to": 4}


# --- core Events --------------------------------------------------------------------------
def core_event(reason, container="demo", pod_name="web-7d9-abc", message="", count=1, uid="e1"):
    return k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(name=f"{pod_name}.1", uid=uid),
        involved_object=k8s.V1ObjectReference(
            kind="Pod", name=pod_name, field_path=f"spec.containers{{{container}}}"
        ),
        reason=reason,
        message=message,
        type="Normal",
        count=count,
        last_timestamp=T0,
    )


def test_killing_maps_to_prestop_sigterm_or_sidecar_drain():
    pods = PodTracker()
    pods.resync([pod(prestop=True), pod("plain", prestop=False)], 0.0, initial=True)
    mapper = CoreEventMapper(pods)
    with_hook = mapper.map(core_event("Killing", message="Stopping container demo"), 1.0)
    assert (with_hook.kind, with_hook.obj) == (EventKind.PRESTOP_STARTED, "pod/web-7d9-abc")
    assert with_hook.data["server_time"] == T0.timestamp()
    assert mapper.map(core_event("Killing", pod_name="plain"), 1.0).kind == EventKind.SIGTERM
    drain = mapper.map(core_event("Killing", container="istio-proxy"), 1.0)
    assert (drain.kind, drain.obj) == (EventKind.SIDECAR_DRAIN_STARTED, "proxy/web-7d9-abc-sidecar")


def test_other_reasons():
    mapper = CoreEventMapper(PodTracker())
    probe = mapper.map(core_event("Unhealthy", message="Readiness probe failed: HTTP 503"), 1.0)
    assert probe.kind == EventKind.PROBE_FAILED
    assert probe.data["probe"] == "readiness"
    assert mapper.map(core_event("OOMKilling"), 1.0).kind == EventKind.OOM_KILLED
    backoff = mapper.map(core_event("BackOff", message="Back-off restarting"), 1.0)
    assert (backoff.kind, backoff.data["reason"]) == (EventKind.NOTE, "BackOff")
    assert mapper.map(core_event("Pulled"), 1.0).kind == EventKind.NOTE
    assert mapper.map(core_event("Scheduled"), 1.0) is None


def test_repeated_events_count_once_per_occurrence():
    mapper = CoreEventMapper(PodTracker())
    assert mapper.resync([core_event("Unhealthy", count=3)], 0.0, initial=True) == []
    assert mapper.update("MODIFIED", core_event("Unhealthy", count=3), 1.0) == []
    assert kinds(mapper.update("MODIFIED", core_event("Unhealthy", count=4), 2.0)) == [
        EventKind.PROBE_FAILED
    ]
    assert kinds(mapper.update("ADDED", core_event("Killing", uid="e2"), 3.0)) == [
        EventKind.SIGTERM
    ]
