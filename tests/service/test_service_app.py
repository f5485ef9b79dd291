"""In-process checks of every endpoint of the demo service (ASGI, no sockets: fast).

What needs a real process (signals, shutdown, OOM kill, event-loop stalls seen over TCP) is in
test_service_process.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from starlette.types import ASGIApp

import lab_app.service
from lab_app.service.app import VERSION_HEADER, create_app
from lab_app.service.config import ServiceConfig
from lab_app.service.lifecycle import ServiceState
from tests.helpers import wait_until

FAULT_ENDPOINTS = [
    "/k8s/shutdown",
    "/k8s/memoryleak",
    "/k8s/fullgc",
    "/k8s/retry",
    "/k8s/delayRetry",
]

BASE = ServiceConfig(app_version="v9", image_id="img-1", pod_name="pod-a")


def client_for(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(BASE)) as c:
        yield c


@pytest.fixture
def faults_client() -> Callable[..., httpx.AsyncClient]:
    """A client for an app with the fault endpoints on and ``config`` overrides."""

    def make(**changes: object) -> httpx.AsyncClient:
        config = replace(BASE, enable_fault_endpoints=True, **changes)
        return client_for(create_app(config))

    return make


async def test_ping_and_demo_answer_text_with_version(client: httpx.AsyncClient) -> None:
    ping = await client.get("/ping")
    assert (ping.status_code, ping.text) == (200, "pong")
    assert ping.headers["content-type"].startswith("text/plain")
    demo = await client.get("/k8s/demo")
    assert (demo.status_code, demo.text) == (200, "OK - v9")
    assert demo.headers[VERSION_HEADER] == "v9"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ping", 200),
        ("/version", 200),
        ("/healthz/live", 200),
        ("/no/such/path", 404),
        ("/k8s/longTask?seconds=abc", 422),
        ("/k8s/retry", 403),
    ],
)
async def test_every_response_carries_the_version_header(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.headers[VERSION_HEADER] == "v9"


async def test_version_reports_build_pod_and_mode(client: httpx.AsyncClient) -> None:
    before = time.time()
    body = (await client.get("/version")).json()
    assert body["version"] == "v9"
    assert body["pod"] == "pod-a"
    assert body["image_id"] == "img-1"
    assert body["shutdown_mode"] == "graceful"
    assert before - 60 < body["start_time"] <= before
    assert body["inflight"] == 0
    assert body["draining"] is False


async def test_version_counts_requests_in_flight(client: httpx.AsyncClient) -> None:
    task = asyncio.create_task(client.get("/k8s/longTask", params={"seconds": 0.5}))
    for _ in range(200):  # bounded: the long task registers within a few loop turns
        body = (await client.get("/version")).json()
        if body["inflight"] == 1:
            break
        await asyncio.sleep(0)
    assert body["inflight"] == 1
    assert (await task).status_code == 200


async def test_long_task_waits_then_answers_json(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await client.get("/k8s/longTask", params={"seconds": 0.3})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json() == {"status": "OK - v9"}
    assert elapsed >= 0.3


@pytest.mark.parametrize("seconds", ["-5", "abc", "60.5", "nan", "inf", ""])
async def test_long_task_rejects_bad_seconds_with_a_message(
    client: httpx.AsyncClient, seconds: str
) -> None:
    response = await client.get("/k8s/longTask", params={"seconds": seconds})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["query", "seconds"]
    assert detail[0]["msg"]


async def test_long_task_answers_500_when_the_pool_stays_saturated() -> None:
    config = replace(BASE, longtask_workers=1)
    app = create_app(config, longtask_queue_timeout=0.3)
    async with client_for(app) as c:

        async def timed_long_task() -> tuple[httpx.Response, float]:
            started = time.perf_counter()
            response = await c.get("/k8s/longTask", params={"seconds": 1.0})
            return response, time.perf_counter() - started

        # Two requests for one worker: whichever gets it works 1 s, the other gives up.
        answers = await asyncio.gather(timed_long_task(), timed_long_task())
        (served, served_after), (refused, refused_after) = sorted(
            answers, key=lambda answer: answer[0].status_code
        )
        assert served.status_code == 200
        assert served_after >= 1.0
        assert refused.status_code == 500
        assert refused.json() == {"status": "fail - v9"}
        assert 0.25 <= refused_after < 0.9, "gave up after the queue timeout, not the task"
        # the worker is free again
        assert (await c.get("/k8s/longTask", params={"seconds": 0})).status_code == 200


@pytest.mark.parametrize("path", FAULT_ENDPOINTS)
async def test_fault_endpoints_are_forbidden_unless_enabled(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"seconds": "-1"})  # 403 even before validation
    assert response.status_code == 403
    assert "ENABLE_FAULT_ENDPOINTS=true" in response.json()["detail"]
    assert path in response.json()["detail"]
    assert response.headers[VERSION_HEADER] == "v9"


async def test_retry_cycles_503_409_200(faults_client: Callable[..., httpx.AsyncClient]) -> None:
    async with faults_client() as c:
        statuses = [(await c.get("/k8s/retry")).status_code for _ in range(7)]
        assert statuses == [503, 409, 200, 503, 409, 200, 503]
        # /k8s/delayRetry has its own counter, so it starts the cycle afresh
        delayed = [(await c.get("/k8s/delayRetry?seconds=0")).status_code for _ in range(4)]
        assert delayed == [503, 409, 200, 503]
        last = await c.get("/k8s/retry")
        assert (last.status_code, last.text) == (409, "Conflict - v9 (call 8)")


async def test_delay_retry_waits_and_is_bounded(
    faults_client: Callable[..., httpx.AsyncClient],
) -> None:
    async with faults_client() as c:
        started = time.perf_counter()
        response = await c.get("/k8s/delayRetry", params={"seconds": 0.2})
        assert time.perf_counter() - started >= 0.2
        assert response.status_code == 503
        assert (await c.get("/k8s/delayRetry", params={"seconds": 10.5})).status_code == 422
        assert (await c.get("/k8s/delayRetry", params={"seconds": -1})).status_code == 422


async def test_fullgc_pauses_for_the_requested_time(
    faults_client: Callable[..., httpx.AsyncClient],
) -> None:
    async with faults_client(fullgc_seconds=0.1) as c:
        default = (await c.get("/k8s/fullgc")).json()
        assert default["requested_seconds"] == 0.1
        assert default["paused_seconds"] >= 0.1
        explicit = (await c.get("/k8s/fullgc", params={"seconds": 0.2})).json()
        assert explicit["paused_seconds"] >= 0.2
        assert (await c.get("/k8s/fullgc", params={"seconds": 61})).status_code == 422


async def test_injected_errors_and_delay_on_demo(
    faults_client: Callable[..., httpx.AsyncClient],
) -> None:
    async with faults_client(fault_error_rate=1.0, app_version="v3") as c:
        response = await c.get("/k8s/demo")
        assert response.status_code == 500
        assert response.text.startswith("ERROR - v3")
    async with faults_client(fault_delay_ms=200.0) as c:
        started = time.perf_counter()
        assert (await c.get("/k8s/demo")).status_code == 200
        assert time.perf_counter() - started >= 0.2


async def test_readiness_fails_and_connections_close_while_draining() -> None:
    state = ServiceState(BASE)
    async with client_for(create_app(BASE, state=state)) as c:
        ready = await c.get("/healthz/ready")
        assert (ready.status_code, ready.text) == (200, "ready")
        assert "connection" not in ready.headers
        state.draining = True
        draining = await c.get("/healthz/ready")
        assert (draining.status_code, draining.text) == (503, "draining")
        assert draining.headers["connection"] == "close"
        assert (await c.get("/ping")).headers["connection"] == "close"
        live = await c.get("/healthz/live")
        assert (live.status_code, live.text) == (200, "live")


async def test_shutdown_endpoint_answers_then_requests_shutdown() -> None:
    config = replace(BASE, enable_fault_endpoints=True)
    state = ServiceState(config)
    requests: list[str] = []
    state.request_shutdown = requests.append
    async with client_for(create_app(config, state=state)) as c:
        response = await c.get("/k8s/shutdown")
    assert response.status_code == 200
    assert "shutting down" in response.text
    assert requests == ["/k8s/shutdown"]


async def test_memory_leak_starts_once_and_reports_the_limit() -> None:
    config = replace(BASE, enable_fault_endpoints=True, memory_limit_mb=1)
    kills: list[tuple[float, int]] = []
    app = create_app(config, on_oom=lambda rss, limit: kills.append((rss, limit)))
    async with client_for(app) as c:
        first = await c.get("/k8s/memoryleak")
        second = await c.get("/k8s/memoryleak")
    assert first.status_code == second.status_code == 200
    assert "leaking memory" in first.text and "above 1 MiB" in first.text
    assert "already leaking" in second.text
    # RSS is far above 1 MiB, so the leak thread calls on_oom at once (instead of SIGKILL)
    wait_until(lambda: kills, 5, message="on_oom called")
    rss, limit = kills[0]
    assert limit == 1 and rss > 1


def test_every_route_is_documented_in_the_package_docstring() -> None:
    app = create_app(BASE)
    documented = set(re.findall(r"`GET (/[^`?]*)", lab_app.service.__doc__ or ""))
    routes = {
        route.path
        for route in app.routes
        if route.path not in {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    }
    assert routes == documented
