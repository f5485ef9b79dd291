"""Pod faults in a running lab: the app process SIGKILLed, then killed again while another
program holds its port.

As on Kubernetes (restartPolicy Always): ``ContainerExited`` then ``Restarted`` events, the
``restarts`` count, the crash back-off between failed restarts (10 s doubling, scaled by
``crash_backoff_scale``), and the reason of a failed start (here the busy port, from the
app's last log line, like ``terminationMessagePolicy: FallbackToLogsOnError``).
"""

from __future__ import annotations

import os
import signal
import time

from reliability_testlib import (
    APP,
    alive,
    answers_ok,
    eventually,
    kinds_of,
    manifest,
    one_replica,
    take_port,
)

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind


def _exits(c: EmbeddedCluster, obj: str, since: float) -> list:
    return [e for e in c.events(since=since) if e.obj == obj and e.kind == "ContainerExited"]


async def test_a_killed_pod_is_restarted_with_backoff_and_a_busy_port_is_named(
    plain_cluster: EmbeddedCluster,
) -> None:
    c = plain_cluster
    await c.apply([manifest("configmap.yaml"), one_replica()])
    await c.wait_rollout(APP, timeout=30)
    info = (await c.pods())[0]
    obj = f"pod/{info.name}"
    url = f"http://127.0.0.1:{info.port}/k8s/demo"

    # kill -9: the first restart is immediate; the exit is an Error with code 137
    since = time.time()
    os.kill(info.pid, signal.SIGKILL)
    await eventually(lambda: c.pod(info.name).restarts == 1 and c.pod(info.name).ready, 20,
                     message="restart 1")  # fmt: skip
    exited = _exits(c, obj, since)
    assert [(e.data["exit_code"], e.data["reason"], e.data["signal"]) for e in exited] == [
        (137, "Error", 9)
    ]
    kinds = kinds_of(c.events(since=since), obj)
    assert kinds.index(EventKind.CONTAINER_EXITED) < kinds.index(EventKind.RESTARTED)
    assert not [e for e in c.events(since=since) if "Back-off" in e.message]
    assert await answers_ok(url)

    # kill -9 again and take the app's port: the restart (after a 0.5 s back-off) fails,
    # its reason is named, and the next back-off (1 s) finds the port free again
    pid = c.pod(info.name).info().pid
    assert pid is not None and pid != info.pid
    since = time.time()
    os.kill(pid, signal.SIGKILL)
    squatter = take_port(info.extra["app_port"])
    try:
        failed = await eventually(
            lambda: [e for e in _exits(c, obj, since) if e.data["exit_code"] == 2], 20,
            message="a failed start",
        )  # fmt: skip
        assert str(info.extra["app_port"]) in failed[0].message
        assert "already in use" in failed[0].message
        last = c.pod(info.name).info().extra["last_message"]
        assert last == failed[0].data["termination_message"]
        assert not c.pod(info.name).ready
    finally:
        squatter.close()
    await eventually(lambda: c.pod(info.name).ready, 20, message="ready after the back-off")
    pod = c.pod(info.name)
    assert pod.restarts == 3
    backoffs = [e.data["backoff_seconds"] for e in c.events(since=since) if "Back-off" in e.message]
    assert backoffs == [0.5, 1.0], backoffs
    assert await answers_ok(url)
    assert not alive([info.pid, pid])
