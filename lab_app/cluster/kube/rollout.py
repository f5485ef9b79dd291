"""Is a Deployment's rollout done? The same reading of its status as ``kubectl rollout status``.

kubectl (``polymorphichelpers/rollout_status.go``) decides from the Deployment object
alone: the controller must have observed the latest generation, the progress deadline
must not have passed, every replica must run the new template, no old replica may be
left, and every new replica must be available. ``wait_for_rollout`` re-evaluates that on
each change delivered by a watch, so it reacts within the watch latency and never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import api_error, new_watch, stop_watch, watch_stream
from lab_app.cluster.kube.objects import meta
from lab_app.errors import LabError, NotFoundError, RolloutTimeoutError

TIMED_OUT_REASON = "ProgressDeadlineExceeded"


class ProgressDeadlineExceededError(RolloutTimeoutError):
    """The Deployment controller gave up: ``spec.progressDeadlineSeconds`` passed."""


@dataclass(frozen=True)
class RolloutStatus:
    done: bool
    message: str


def rollout_status(deployment: k8s.V1Deployment) -> RolloutStatus:
    """kubectl's DeploymentStatusViewer.Status, returning (done, message).

    Raises ``ProgressDeadlineExceededError`` when the Progressing condition says
    ``ProgressDeadlineExceeded``, as kubectl exits with an error then.
    """
    name = deployment.metadata.name if deployment.metadata else "?"
    generation = (deployment.metadata.generation if deployment.metadata else None) or 0
    status = deployment.status or k8s.V1DeploymentStatus()
    observed = status.observed_generation or 0
    if generation > observed:
        return RolloutStatus(False, "Waiting for deployment spec update to be observed...")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == TIMED_OUT_REASON:
            raise ProgressDeadlineExceededError(
                f"deployment {name!r} exceeded its progress deadline"
                + (f": {condition.message}" if condition.message else "")
            )
    desired = deployment.spec.replicas if deployment.spec else None
    updated = status.updated_replicas or 0
    replicas = status.replicas or 0
    available = status.available_replicas or 0
    if desired is not None and updated < desired:
        return RolloutStatus(
            False,
            f"Waiting for deployment {name!r} rollout to finish: "
            f"{updated} out of {desired} new replicas have been updated...",
        )
    if replicas > updated:
        return RolloutStatus(
            False,
            f"Waiting for deployment {name!r} rollout to finish: "
            f"{replicas - updated} old replicas are pending termination...",
        )
    if available < updated:
        return RolloutStatus(
            False,
            f"Waiting for deployment {name!r} rollout to finish: "
            f"{available} of {updated} updated replicas are available...",
        )
    return RolloutStatus(True, f"deployment {name!r} successfully rolled out")


def wait_for_rollout(
    apps: k8s.AppsV1Api,
    namespace: str,
    name: str,
    timeout: float,
    *,
    stop: threading.Event | None = None,
    on_watch: Callable[[k8s_watch.Watch | None], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> str:
    """Block until ``name`` is rolled out; returns kubectl's success message.

    Reads the Deployment once, then watches it from that resourceVersion (server-side
    ``timeoutSeconds`` bounded by what is left of ``timeout``). ``stop`` and ``on_watch``
    let the async caller interrupt a watch blocked on the socket (``Watch.stop``).
    """
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    try:
        deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=10)
    except ApiException as exc:
        if exc.status == 404:
            raise NotFoundError(f"deployment/{name} not found in namespace {namespace!r}") from None
        raise
    status = rollout_status(deployment)
    last = status.message
    if on_progress:
        on_progress(last)
    if status.done:
        return last
    resource_version = meta(deployment).resource_version
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        watcher = new_watch()
        if on_watch:
            on_watch(watcher)
        try:
            for event in watch_stream(
                watcher,
                apps.list_namespaced_deployment,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                timeout_seconds=max(1, int(remaining)),
                allow_watch_bookmarks=True,
                _request_timeout=(10, remaining + 10),
            ):
                if stop.is_set():
                    break
                if event["type"] == "BOOKMARK":
                    continue
                if event["type"] == "DELETED":
                    raise LabError(f"deployment/{name} was deleted while waiting for its rollout")
                status = rollout_status(event["object"])
                if status.message != last and on_progress:
                    on_progress(status.message)
                last = status.message
                if status.done:
                    return last
            resource_version = watcher.resource_version or resource_version
        except ApiException as exc:
            if stop.is_set():
                break
            if exc.status != 410:  # 410 Gone: our resourceVersion is too old; read again
                raise
            deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=10)
            status = rollout_status(deployment)
            last = status.message
            if status.done:
                return last
            resource_version = meta(deployment).resource_version
        except Exception:
            if stop.is_set():  # Watch.stop() shut the socket under the read
                break
            raise
        finally:
            if on_watch:
                on_watch(None)
    if stop.is_set():
        raise LabError(f"waiting for the rollout of deployment/{name} was interrupted")
    raise RolloutTimeoutError(
        f"deployment/{name} did not finish its rollout within {timeout:g} s: {last}"
    )


class RolloutWaits:
    """The ``wait_rollout`` calls in progress, so that cancelling one, or ``close()``,
    interrupts its watch at once: ``Watch.stop`` shuts the socket the worker thread is
    blocked on, which a cancelled ``asyncio.to_thread`` alone would leave running."""

    def __init__(self) -> None:
        self._watches: set[k8s_watch.Watch] = set()
        self._lock = threading.Lock()
        self._stops: set[threading.Event] = set()

    async def wait(
        self, apps: k8s.AppsV1Api, namespace: str, deployment: str, timeout: float
    ) -> None:
        """``wait_for_rollout`` in a worker thread, interruptible (see the class doc)."""
        stop = threading.Event()
        current: list[k8s_watch.Watch] = []

        def on_watch(watcher: k8s_watch.Watch | None) -> None:
            with self._lock:
                for old in current:
                    self._watches.discard(old)
                current.clear()
                if watcher is not None:
                    current.append(watcher)
                    self._watches.add(watcher)

        task = asyncio.ensure_future(
            asyncio.to_thread(
                wait_for_rollout, apps, namespace, deployment, timeout, stop=stop, on_watch=on_watch
            )
        )
        self._stops.add(stop)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            stop.set()
            deadline = time.monotonic() + 10
            while not task.done() and time.monotonic() < deadline:
                with self._lock:  # repeated: a watch may not have had its socket yet
                    for watcher in current:
                        stop_watch(watcher)
                await asyncio.wait({task}, timeout=0.05)
            with contextlib.suppress(BaseException):
                if task.done():
                    task.result()
            raise
        except ApiException as exc:
            raise api_error(exc, f"watching deployment/{deployment}") from None
        finally:
            self._stops.discard(stop)

    async def interrupt_all(self, timeout: float = 10.0) -> None:
        """Stop every wait in progress (``close()``): each raises ``LabError`` "interrupted"."""
        for stop in list(self._stops):
            stop.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                watches = list(self._watches)
            if not watches:
                break
            for watcher in watches:
                stop_watch(watcher)
            await asyncio.sleep(0.05)
