"""Envoy faults in a running lab: each Envoy (gateway, kube-proxy, sidecar) SIGKILLed, or its
port taken by another program while it is down.

What a learner should see, as on Kubernetes: the crash and the restart as events, the proxy
back on the same port (``gateway_url()``/``service_url()`` stay valid), the rest of the
cluster untouched, and requests answered again within a deadline. A restart that cannot
succeed names the port in an event and in a ``LabError`` from the next ``config_settled()``,
and the lab retries with the crash back-off until the port is free again.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from reliability_testlib import alive, all_ok, eventually, listeners, take_port

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.events import EventKind
from lab_app.errors import LabError

DEMO = "/k8s/demo"


def _crash_then_restart(c: EmbeddedCluster, obj: str, since: float) -> bool:
    kinds = [e.kind for e in c.events(since=since) if e.obj == obj]
    return (
        EventKind.PROXY_CRASHED in kinds
        and EventKind.PROXY_RESTARTED in kinds
        and kinds.index(EventKind.PROXY_CRASHED) < kinds.index(EventKind.PROXY_RESTARTED)
    )


def _restart_failures(c: EmbeddedCluster, obj: str, since: float) -> list[str]:
    return [
        e.message
        for e in c.events(since=since)
        if e.obj == obj and e.kind == EventKind.NOTE and e.data.get("reason") == "RestartFailed"
    ]


async def _kill_and_wait_restart(c: EmbeddedCluster, process: str, obj: str) -> int:
    """SIGKILL one lab process, wait for crash + restart events; returns the new pid."""
    old = c.processes()[process]
    since = time.time()
    os.kill(old, signal.SIGKILL)
    await eventually(lambda: _crash_then_restart(c, obj, since), 15, message=f"{obj} restarted")
    new = c.processes()[process]
    assert new != old and not alive([old])
    return new


async def test_each_envoy_killed_is_restarted_on_its_port_and_the_lab_keeps_serving(
    istio_cluster: EmbeddedCluster,
) -> None:
    c = istio_cluster
    gateway, service = c.gateway_url(), c.service_url()
    assert await all_ok(gateway + DEMO) and await all_ok(service + DEMO)
    pod = (await c.pods())[0]
    app_pid = pod.pid
    assert app_pid is not None and pod.sidecar

    # the ingress gateway: same port, same routes (its last config), pods untouched
    gw_port = int(gateway.rsplit(":", 1)[1])
    new = await _kill_and_wait_restart(c, "gateway", "proxy/gateway")
    assert c.gateway_url() == gateway
    assert ("127.0.0.1", gw_port) in listeners(new)
    await eventually(lambda: all_ok(gateway + DEMO), 15, message="gateway answers again")

    # kube-proxy of the Service: same service_url
    svc_port = int(service.rsplit(":", 1)[1])
    new = await _kill_and_wait_restart(
        c, "kube-proxy-zero-downtime-rollingupdate", "proxy/kube-proxy-zero-downtime-rollingupdate"
    )
    assert c.service_url() == service
    assert ("127.0.0.1", svc_port) in listeners(new)
    await eventually(lambda: all_ok(service + DEMO), 15, message="kube-proxy answers again")

    # the pod's sidecar: the istio-proxy container's restart count goes up, the app stays
    await _kill_and_wait_restart(c, f"pod/{pod.name}-sidecar", f"proxy/{pod.name}-sidecar")
    await eventually(lambda: c.pod(pod.name).ready, 15, message="pod ready again")
    info = c.pod(pod.name).info()
    assert info.extra["containers"]["istio-proxy"]["restarts"] == 1
    assert info.pid == app_pid and info.restarts == 0  # the app container did not restart
    assert ("127.0.0.1", info.port) in listeners(info.extra["sidecar_pid"])
    await eventually(lambda: all_ok(gateway + DEMO), 15, message="gateway -> sidecar -> app")
    assert c.proxy_errors() == {}
    await c.config_settled()


async def test_a_port_taken_while_an_envoy_is_down_is_named_then_recovered(
    istio_cluster: EmbeddedCluster,
) -> None:
    c = istio_cluster
    gateway = c.gateway_url()
    gw_port = int(gateway.rsplit(":", 1)[1])

    # the gateway dies and another program takes its port before it can restart
    since = time.time()
    os.kill(c.processes()["gateway"], signal.SIGKILL)
    squatter = take_port(gw_port)
    try:
        failures = await eventually(
            lambda: _restart_failures(c, "proxy/gateway", since), 15, message="restart failure"
        )
        assert str(gw_port) in failures[0] and "in use" in failures[0], failures
        with pytest.raises(LabError, match=rf"proxy/gateway.*{gw_port}"):
            await c.config_settled()
        assert "proxy/gateway" in c.proxy_errors()
        assert "gateway" not in c.processes()  # no half-started Envoy left behind
    finally:
        squatter.close()
    # the back-off retries find the port free again
    await eventually(
        lambda: _crash_then_restart(c, "proxy/gateway", since), 20, message="gateway back"
    )
    await eventually(lambda: all_ok(gateway + DEMO), 15, message="gateway answers again")
    await c.config_settled()

    # the same for a sidecar whose pod port is taken: the pod is not ready meanwhile
    pod = (await c.pods())[0]
    since = time.time()
    os.kill(pod.extra["sidecar_pid"], signal.SIGKILL)
    squatter = take_port(pod.port)
    try:
        obj = f"proxy/{pod.name}-sidecar"
        failures = await eventually(
            lambda: _restart_failures(c, obj, since), 15, message="sidecar restart failure"
        )
        assert str(pod.port) in failures[0], failures
        assert not c.pod(pod.name).ready
        with pytest.raises(LabError, match=rf"{obj}.*{pod.port}"):
            await c.config_settled()
    finally:
        squatter.close()
    await eventually(lambda: c.pod(pod.name).ready, 20, message="pod ready again")
    assert c.pod(pod.name).info().extra["containers"]["istio-proxy"]["restarts"] == 1
    await eventually(lambda: all_ok(gateway + DEMO), 15, message="requests reach the pod again")
    assert c.proxy_errors() == {}
