"""The kube backend maps a container's exit reason the way the embedded kubelet reports it:
``OOMKilled`` (the memory limit) -> an OOMKilled event; ``Error`` with exit code 137 (any other
SIGKILL, a self-kill included) -> ContainerExited, not OOMKilled. Notebook 06 relies on both
backends agreeing."""

from __future__ import annotations

from kubernetes import client as k8s
from test_kube_eventmap import T0, kinds, pod

from lab_app.cluster.events import EventKind
from lab_app.cluster.kube.eventmap import PodTracker
from lab_app.cluster.kube.pods import pod_info


def _restarted_after(reason: str, code: int) -> tuple[list, k8s.V1Pod]:
    tracker = PodTracker()
    tracker.resync([pod(running=True, ready=True)], 0.0, initial=True)
    last = k8s.V1ContainerStateTerminated(exit_code=code, reason=reason, finished_at=T0)
    restarted = pod(running=True, ready=False, restarts=1, last=last)
    return tracker.update("MODIFIED", restarted, 1.0), restarted


def test_oomkilled_is_an_oom_event() -> None:
    events, restarted = _restarted_after("OOMKilled", 137)
    assert kinds(events)[:2] == [EventKind.OOM_KILLED, EventKind.RESTARTED]
    assert pod_info(restarted).last_state == "OOMKilled"


def test_error_137_is_a_container_exit_not_an_oom_kill() -> None:
    events, restarted = _restarted_after("Error", 137)
    assert kinds(events)[:2] == [EventKind.CONTAINER_EXITED, EventKind.RESTARTED]
    assert EventKind.OOM_KILLED not in kinds(events)
    assert (events[0].data["reason"], events[0].data["exit_code"]) == ("Error", 137)
    assert pod_info(restarted).last_state == "Error"
