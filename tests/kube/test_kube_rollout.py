"""kubectl's rollout-status reading, and waiting on it through a real HTTP watch."""

from __future__ import annotations

import threading
import time

import pytest
from kube_apiserver import FakeApiServer, Reply, Stream, not_found, wait_until
from kubernetes import client as k8s

from lab_app.cluster.kube.client import KubeClients, load_configuration
from lab_app.cluster.kube.rollout import (
    ProgressDeadlineExceededError,
    rollout_status,
    wait_for_rollout,
)
from lab_app.errors import LabError, RolloutTimeoutError

PATH = "/apis/apps/v1/namespaces/zdlab/deployments"


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    desired: int = 2,
    replicas: int = 2,
    updated: int = 2,
    available: int = 2,
    conditions: list[k8s.V1DeploymentCondition] | None = None,
    resource_version: str = "100",
) -> k8s.V1Deployment:
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(
            name="web", generation=generation, resource_version=resource_version
        ),
        spec=k8s.V1DeploymentSpec(
            replicas=desired,
            selector=k8s.V1LabelSelector(match_labels={"app": "web"}),
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="demo", image="zdlab/demo:v2")])
            ),
        ),
        status=k8s.V1DeploymentStatus(
            observed_generation=observed,
            replicas=replicas,
            updated_replicas=updated,
            available_replicas=available,
            conditions=conditions,
        ),
    )


def progressing(reason: str) -> k8s.V1DeploymentCondition:
    return k8s.V1DeploymentCondition(
        type="Progressing",
        status="False" if "Exceeded" in reason else "True",
        reason=reason,
        message=f'ReplicaSet "web-abc" {reason}',
    )


def test_complete():
    status = rollout_status(deployment(conditions=[progressing("NewReplicaSetAvailable")]))
    assert status.done
    assert status.message == "deployment 'web' successfully rolled out"


def test_spec_update_not_yet_observed():
    status = rollout_status(deployment(generation=3, observed=2))
    assert not status.done
    assert "spec update to be observed" in status.message


def test_new_replicas_still_being_created():
    status = rollout_status(deployment(replicas=3, updated=1, available=2))
    assert not status.done
    assert "1 out of 2 new replicas have been updated" in status.message


def test_old_replicas_pending_termination():
    status = rollout_status(deployment(replicas=3, updated=2, available=3))
    assert not status.done
    assert "1 old replicas are pending termination" in status.message


def test_updated_replicas_not_yet_available():
    status = rollout_status(deployment(available=1, conditions=[progressing("ReplicaSetUpdated")]))
    assert not status.done
    assert "1 of 2 updated replicas are available" in status.message


def test_progress_deadline_exceeded_is_an_error():
    with pytest.raises(ProgressDeadlineExceededError, match="exceeded its progress deadline"):
        rollout_status(
            deployment(available=1, conditions=[progressing("ProgressDeadlineExceeded")])
        )
    # not before the controller observed the latest spec (kubectl checks generation first)
    assert not rollout_status(
        deployment(generation=3, conditions=[progressing("ProgressDeadlineExceeded")])
    ).done


# --- through HTTP -------------------------------------------------------------------------
def serialize(obj: k8s.V1Deployment) -> dict:
    return k8s.ApiClient().sanitize_for_serialization(obj)


@pytest.fixture
def apps(kubeconfig) -> k8s.AppsV1Api:
    configuration, info = load_configuration(kubeconfig)
    clients = KubeClients(k8s.ApiClient(configuration), info)
    yield clients.apps
    clients.close()


def test_wait_returns_when_the_watch_reports_completion(fake_api: FakeApiServer, apps):
    fake_api.on("GET", f"{PATH}/web", serialize(deployment(available=1)))
    done = serialize(deployment(resource_version="101"))
    fake_api.on(
        "GET",
        PATH,
        Stream(
            [
                {"type": "MODIFIED", "object": serialize(deployment(available=1))},
                {"type": "MODIFIED", "object": done},
            ]
        ),
        watch=True,
    )
    progress: list[str] = []
    message = wait_for_rollout(apps, "zdlab", "web", 10, on_progress=progress.append)
    assert message == "deployment 'web' successfully rolled out"
    assert progress[0].endswith("1 of 2 updated replicas are available...")
    watch = fake_api.find("GET", PATH)[0]
    assert watch.query["watch"] == "true"
    assert watch.query["fieldSelector"] == "metadata.name=web"
    assert watch.query["resourceVersion"] == "100"  # from the read: nothing missed


def test_wait_times_out_with_the_last_status(fake_api: FakeApiServer, apps):
    fake_api.on("GET", f"{PATH}/web", serialize(deployment(replicas=3, updated=2)))
    # the server ends each watch at once, as it would at timeoutSeconds
    fake_api.on("GET", PATH, Stream([], hold_seconds=0), watch=True)
    started = time.monotonic()
    with pytest.raises(RolloutTimeoutError, match="old replicas are pending termination"):
        wait_for_rollout(apps, "zdlab", "web", 1.5)
    assert 1.4 < time.monotonic() - started < 6


def test_wait_reports_a_deadline_exceeded_during_the_watch(fake_api: FakeApiServer, apps):
    fake_api.on("GET", f"{PATH}/web", serialize(deployment(available=1)))
    failed = deployment(available=1, conditions=[progressing("ProgressDeadlineExceeded")])
    fake_api.on(
        "GET", PATH, Stream([{"type": "MODIFIED", "object": serialize(failed)}]), watch=True
    )
    with pytest.raises(ProgressDeadlineExceededError):
        wait_for_rollout(apps, "zdlab", "web", 10)


def test_wait_on_a_missing_deployment(fake_api: FakeApiServer, apps):
    fake_api.on("GET", f"{PATH}/nope", Reply(404, not_found("nope")))
    with pytest.raises(LabError, match="deployment/nope not found in namespace 'zdlab'"):
        wait_for_rollout(apps, "zdlab", "nope", 5)


def test_stop_interrupts_a_blocked_watch(fake_api: FakeApiServer, apps):
    fake_api.on("GET", f"{PATH}/web", serialize(deployment(available=1)))
    fake_api.on("GET", PATH, Stream([], hold_seconds=60), watch=True)
    stop = threading.Event()
    watchers = []
    errors: list[BaseException] = []

    def run():
        try:
            wait_for_rollout(
                apps, "zdlab", "web", 60, stop=stop, on_watch=lambda w: w and watchers.append(w)
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    wait_until(lambda: watchers and fake_api.find("GET", PATH), 10)
    started = time.monotonic()
    stop.set()

    def stopped() -> bool:
        # Watch.stop() before the response arrived has no socket to shut: repeat it, as
        # KubeCluster does, until the thread ends
        watchers[-1].stop()
        thread.join(0.05)
        return not thread.is_alive()

    wait_until(stopped, 10)
    assert time.monotonic() - started < 5
    assert errors and "interrupted" in str(errors[0])
