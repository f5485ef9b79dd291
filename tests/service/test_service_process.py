"""The demo service as a real process: real sockets, real signals, real exit statuses.

These are the behaviours the lab's experiments rest on: naive shutdown cuts requests in flight,
graceful shutdown finishes them after failing readiness, an OOM kill is a SIGKILL, a "full GC"
stalls every request of the process.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from tests.helpers import wait_until
from tests.service.processes import ServiceProcess, StartService

NAIVE_SIGNAL_EXIT = 143


class BackgroundRequest:
    """A GET running in a thread, recording its response or transport error and when."""

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        self.response: httpx.Response | None = None
        self.error: httpx.TransportError | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(url, timeout), daemon=True)
        self._thread.start()

    def _run(self, url: str, timeout: float) -> None:
        try:
            self.response = httpx.get(url, timeout=timeout)
        except httpx.TransportError as exc:
            self.error = exc
        self.finished_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request did not finish"


def inflight(service: ServiceProcess) -> int:
    return int(httpx.get(f"{service.url}/version", timeout=5).json()["inflight"])


def start_long_task(service: ServiceProcess, seconds: float) -> BackgroundRequest:
    """Start /k8s/longTask and return once the service has it in flight."""
    request = BackgroundRequest(f"{service.url}/k8s/longTask?seconds={seconds}")
    wait_until(lambda: inflight(service) >= 1, 10, message="long task in flight")
    return request


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


# -- a shared running service: every endpoint over real HTTP --------------------------------


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/ping", 200, "pong"),
        ("/k8s/demo", 200, "OK - v7"),
        ("/healthz/ready", 200, "ready"),
        ("/healthz/live", 200, "live"),
        ("/k8s/longTask?seconds=0.05", 200, '{"status":"OK - v7"}'),
        ("/k8s/longTask?seconds=-5", 422, None),
        ("/k8s/longTask?seconds=abc", 422, None),
        ("/k8s/fullgc?seconds=0", 200, None),
        ("/k8s/fullgc?seconds=100", 422, None),
        ("/k8s/delayRetry?seconds=11", 422, None),
        ("/no/such/path", 404, None),
    ],
)
def test_endpoints_over_http(
    running_service: ServiceProcess, path: str, status: int, body: str | None
) -> None:
    response = httpx.get(running_service.url + path, timeout=10)
    assert response.status_code == status
    assert response.headers["x-app-version"] == "v7"
    if body is not None:
        assert response.text == body


def test_version_over_http(running_service: ServiceProcess) -> None:
    body: dict[str, Any] = httpx.get(f"{running_service.url}/version", timeout=5).json()
    assert {k: body[k] for k in ("version", "pod", "image_id", "shutdown_mode")} == {
        "version": "v7",
        "pod": "pod-under-test",
        "image_id": "img-123",
        "shutdown_mode": "graceful",
    }
    assert time.time() - 120 < body["start_time"] <= time.time()


def test_retry_cycle_over_http(running_service: ServiceProcess) -> None:
    with httpx.Client(base_url=running_service.url, timeout=5) as client:
        statuses = [client.get("/k8s/retry").status_code for _ in range(6)]
    assert statuses == [503, 409, 200, 503, 409, 200]


def test_fullgc_stalls_concurrent_pings(running_service: ServiceProcess) -> None:
    url = running_service.url
    with httpx.Client(timeout=10) as client:
        baseline = []
        for _ in range(5):
            started = time.perf_counter()
            assert client.get(f"{url}/ping").status_code == 200
            baseline.append(time.perf_counter() - started)
        pause = BackgroundRequest(f"{url}/k8s/fullgc?seconds=1.5")
        latencies = []
        while pause.finished_at is None:  # bounded by the pause (plus the request timeout)
            started = time.perf_counter()
            assert client.get(f"{url}/ping").status_code == 200
            latencies.append(time.perf_counter() - started)
    pause.join(5)
    assert pause.response is not None and pause.response.status_code == 200
    assert pause.response.json()["paused_seconds"] >= 1.5
    assert max(baseline) < 0.5
    assert max(latencies) >= 0.8, f"no ping waited for the pause: {latencies}"


def test_idle_keepalive_connection_is_closed_after_keepalive_seconds(
    running_service: ServiceProcess,
) -> None:
    assert running_service.port is not None
    with socket.create_connection(("127.0.0.1", running_service.port), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")
        received = b""
        while not received.endswith(b"pong"):
            chunk = sock.recv(4096)
            assert chunk, f"closed before the response ended: {received!r}"
            received += chunk
        idle_since = time.monotonic()
        assert sock.recv(1) == b""  # blocks until the server closes the idle connection
        idle = time.monotonic() - idle_since
    assert 0.7 <= idle < 5, f"KEEPALIVE_SECONDS=1 but closed after {idle:.2f} s"


# -- shutdown -------------------------------------------------------------------------------


def test_naive_sigterm_cuts_the_request_in_flight(start_service: StartService) -> None:
    service = start_service(SHUTDOWN_MODE="naive")
    request = start_long_task(service, seconds=3)
    signalled = time.monotonic()
    service.send_signal(signal.SIGTERM)
    request.join(10)
    assert request.response is None, f"naive shutdown let it finish: {request.response}"
    assert isinstance(request.error, httpx.ReadError | httpx.RemoteProtocolError), request.error
    assert request.finished_at is not None and request.finished_at - signalled < 1.5
    assert service.wait_exit(10) == NAIVE_SIGNAL_EXIT
    assert service.events() == [
        "starting",
        "ready",
        "sigterm",
        "listener-closed",
        "inflight-cut",
        "exit",
    ]
    assert re.search(r"inflight-cut count=1\b", service.stderr)
    assert refuses_connections(f"{service.url}/ping")


def test_graceful_sigterm_drains_then_finishes_the_request(start_service: StartService) -> None:
    drain = 1.5
    service = start_service(SHUTDOWN_MODE="graceful", DRAIN_SECONDS=str(drain), GRACE_SECONDS="10")
    request = start_long_task(service, seconds=3)
    signalled = time.monotonic()
    service.send_signal(signal.SIGTERM)

    def readiness_failed() -> httpx.Response | None:
        response = httpx.get(f"{service.url}/healthz/ready", timeout=2)
        return response if response.status_code == 503 else None

    not_ready = wait_until(readiness_failed, 5, message="readiness 503")
    not_ready_at = time.monotonic()
    assert not_ready.text == "draining"
    assert not_ready.headers["connection"] == "close"
    assert not_ready_at - signalled < 1.0

    # still served during the drain, with Connection: close
    during_drain = httpx.get(f"{service.url}/ping", timeout=2)
    assert during_drain.status_code == 200 and during_drain.headers["connection"] == "close"

    wait_until(lambda: refuses_connections(f"{service.url}/ping"), 10, message="listener closed")
    refused_at = time.monotonic()
    assert not_ready_at < refused_at
    assert refused_at - signalled >= drain - 0.2, "listener closed before the drain ended"

    request.join(10)
    assert request.error is None, request.error
    assert request.response is not None and request.response.status_code == 200
    assert request.response.json() == {"status": "OK - v1"}
    assert service.wait_exit(10) == 0
    assert service.events() == [
        "starting",
        "ready",
        "sigterm",
        "draining",
        "listener-closed",
        "exit",
    ]


def test_graceful_cuts_what_outlives_the_grace_period(start_service: StartService) -> None:
    service = start_service(SHUTDOWN_MODE="graceful", DRAIN_SECONDS="0", GRACE_SECONDS="0.5")
    request = start_long_task(service, seconds=20)
    signalled = time.monotonic()
    service.send_signal(signal.SIGTERM)
    request.join(10)
    assert request.response is None and request.error is not None
    assert request.finished_at is not None and request.finished_at - signalled < 5
    assert service.wait_exit(10) == 0
    assert re.search(r"inflight-cut count=1 reason=grace-exceeded", service.stderr)
    assert "Traceback" not in service.stderr


def test_a_second_sigterm_skips_the_rest_of_the_drain(start_service: StartService) -> None:
    service = start_service(SHUTDOWN_MODE="graceful", DRAIN_SECONDS="60")
    service.send_signal(signal.SIGTERM)
    service.wait_for_line(r"^zdlab-service draining seconds=60", 10)
    assert httpx.get(f"{service.url}/healthz/ready", timeout=5).status_code == 503
    hurried = time.monotonic()
    service.send_signal(signal.SIGTERM)
    assert service.wait_exit(10) == 0
    assert time.monotonic() - hurried < 5


@pytest.mark.parametrize("mode", ["graceful", "naive"])
def test_shutdown_endpoint_answers_then_the_process_exits(
    start_service: StartService, mode: str
) -> None:
    service = start_service(SHUTDOWN_MODE=mode, ENABLE_FAULT_ENDPOINTS="true")
    response = httpx.get(f"{service.url}/k8s/shutdown", timeout=5)
    assert response.status_code == 200 and "shutting down" in response.text
    assert service.wait_exit(15) == 0
    assert re.search(rf"sigterm source=/k8s/shutdown mode={mode}\b", service.stderr)


def test_memory_leak_ends_in_sigkill_like_an_oom_kill(start_service: StartService) -> None:
    service = start_service(ENABLE_FAULT_ENDPOINTS="true", MEMORY_LIMIT_MB="80")
    response = httpx.get(f"{service.url}/k8s/memoryleak", timeout=5)
    assert response.status_code == 200 and "leaking memory" in response.text
    assert service.wait_exit(30) == -signal.SIGKILL  # a container runtime reports 137
    match = re.search(r"zdlab-service oom rss_mb=([\d.]+) limit_mb=80\b", service.stderr)
    assert match, service.stderr
    assert float(match.group(1)) > 80
    assert "exit" not in service.events()  # killed, not exited


# -- refusing to start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("SHUTDOWN_MODE", "fast", "naive, graceful"),
        ("MEMORY_LIMIT_MB", "-1", "an integer from 1"),
        ("ENABLE_FAULT_ENDPOINTS", "maybe", "true or false"),
        ("DRAIN_SECONDS", "soon", "a number from 0 to 3600"),
    ],
)
def test_invalid_configuration_exits_2_naming_the_variable(
    start_service: StartService, variable: str, value: str, accepted: str
) -> None:
    service = start_service(ready=False, **{variable: value})
    assert service.wait_exit(30) == 2
    assert f"{variable}={value!r} is not valid" in service.stderr
    assert accepted in service.stderr
    assert "ready" not in service.events()


def test_busy_port_exits_2_naming_the_port(start_service: StartService) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = start_service(ready=False, port=port)
        assert service.wait_exit(30) == 2
    assert f"port {port} on 127.0.0.1 is already in use" in service.stderr
    assert "ready" not in service.events()
