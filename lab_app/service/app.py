"""The demo service's HTTP API: a FastAPI port of the original Spring Boot controller.

The endpoint table is in the package docstring (``lab_app/service/__init__.py``). Behaviour that
depends on the process (draining, shutdown) lives in :class:`ServiceState`, which the server
drives; this module only answers requests, so it can also run in-process under a test client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab_app.service.config import ServiceConfig
from lab_app.service.faults import MemoryLeak, RetryCycle, kill_like_oom, rss_mib, stop_the_world
from lab_app.service.lifecycle import ServiceState

VERSION_HEADER = "x-app-version"
#: The original waited 11 s for its 5-thread pool before answering 500.
LONGTASK_QUEUE_TIMEOUT = 11.0
LONGTASK_MAX_SECONDS = 60.0
DELAY_RETRY_MAX_SECONDS = 10.0
FULLGC_MAX_SECONDS = 60.0


def _seconds(most: float, description: str) -> Any:
    """A ``seconds`` query parameter from 0 to ``most``: a NaN or an infinite sleep would
    never end (or fail inside asyncio), so those are refused with 422 like any bad value."""
    return Query(ge=0, le=most, allow_inf_nan=False, description=description)


LongTaskSeconds = Annotated[float, _seconds(LONGTASK_MAX_SECONDS, "work time")]
PauseSeconds = Annotated[float, _seconds(FULLGC_MAX_SECONDS, "pause length")]
DelaySeconds = Annotated[float, _seconds(DELAY_RETRY_MAX_SECONDS, "delay")]


class VersionInfo(BaseModel):
    version: str
    pod: str
    image_id: str
    start_time: float
    shutdown_mode: Literal["naive", "graceful"]
    inflight: int
    draining: bool


class TaskStatus(BaseModel):
    status: str


class Pause(BaseModel):
    requested_seconds: float
    paused_seconds: float


class ErrorDetail(BaseModel):
    detail: str


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorDetail, "description": "fault endpoints are off (ENABLE_FAULT_ENDPOINTS)"}
}
_RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _text("third call of the cycle"),
    409: _text("second call of the cycle (Istio retryOn retriable-4xx)"),
    503: _text("first call of the cycle (Istio retryOn gateway-error)"),
    **_FORBIDDEN,
}


class ServiceHeadersMiddleware:
    """Outermost ASGI layer: ``x-app-version`` on every response (404, 422 and 500 too),
    ``Connection: close`` while draining so keep-alive clients move to another pod, and the
    count of requests in flight."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.version = state.config.app_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[VERSION_HEADER] = self.version
                if self.state.draining:
                    headers["connection"] = "close"
            await send(message)

        self.state.inflight += 1
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self.state.inflight -= 1


class DemoApp(FastAPI):
    """FastAPI with the service headers wrapped around the *whole* middleware stack."""

    service_state: ServiceState

    def build_middleware_stack(self) -> ASGIApp:
        return ServiceHeadersMiddleware(super().build_middleware_stack(), self.service_state)


def create_app(
    config: ServiceConfig,
    *,
    state: ServiceState | None = None,
    on_oom: Callable[[float, int], None] = kill_like_oom,
    longtask_queue_timeout: float = LONGTASK_QUEUE_TIMEOUT,
) -> DemoApp:
    """Build the service's ASGI app for ``config``.

    ``state`` is shared with the server (draining, shutdown requests); ``on_oom`` is what the
    memory leak does at ``MEMORY_LIMIT_MB`` when that is set (default: SIGKILL this process);
    ``longtask_queue_timeout``
    is how long /k8s/longTask waits for a free worker (11 s, as in the original).
    """
    state = state or ServiceState(config)
    version = config.app_version
    app = DemoApp(
        title="zdlab demo service",
        version=version,
        description="A port of the Spring Boot zero-downtime rolling-update demo.",
    )
    app.service_state = state
    longtask_slots = asyncio.Semaphore(config.longtask_workers)
    retry_cycle = RetryCycle()
    delay_retry_cycle = RetryCycle()
    leak = MemoryLeak(config.memory_limit_mb, on_oom)
    errors = random.Random()

    def require_fault_endpoints(request: Request) -> None:
        if not config.enable_fault_endpoints:
            raise HTTPException(
                status_code=403,
                detail=f"fault endpoint {request.url.path} is disabled; start the service "
                "with ENABLE_FAULT_ENDPOINTS=true to use it",
            )

    faults = [Depends(require_fault_endpoints)]

    def retry_answer(cycle: RetryCycle) -> PlainTextResponse:
        calls, status = cycle.next_status()
        phrase = {503: "Service Unavailable", 409: "Conflict", 200: "OK"}[status]
        return PlainTextResponse(f"{phrase} - {version} (call {calls})", status_code=status)

    @app.get("/ping", response_class=PlainTextResponse, responses={200: _text("pong")})
    async def ping() -> str:
        """Liveness of the original demo (its probes grepped for ``pong``)."""
        return "pong"

    @app.get(
        "/k8s/demo",
        response_class=PlainTextResponse,
        responses={200: _text("OK - <version>"), 500: _text("injected by FAULT_ERROR_RATE")},
    )
    async def demo() -> PlainTextResponse:
        """The request the load runs: ``OK - <version>``, with injected delay/errors (v3)."""
        if config.fault_delay_ms > 0:
            await asyncio.sleep(config.fault_delay_ms / 1000)
        if config.fault_error_rate > 0 and errors.random() < config.fault_error_rate:
            return PlainTextResponse(f"ERROR - {version} (injected fault)", status_code=500)
        return PlainTextResponse(f"OK - {version}")

    @app.get("/version", response_model=VersionInfo)
    async def version_info() -> VersionInfo:
        """Which build and pod answered; ``inflight`` excludes this request."""
        return VersionInfo(
            version=version,
            pod=config.pod_name,
            image_id=config.image_id,
            start_time=state.start_time,
            shutdown_mode=config.shutdown_mode,
            inflight=max(state.inflight - 1, 0),
            draining=state.draining,
        )

    @app.get(
        "/k8s/longTask",
        response_model=TaskStatus,
        responses={500: {"model": TaskStatus, "description": "no worker free within 11 s"}},
    )
    async def long_task(seconds: LongTaskSeconds = 10.0) -> Any:
        """Works ``seconds`` on a pool of LONGTASK_WORKERS; 500 if the pool stays saturated."""
        try:
            async with asyncio.timeout(longtask_queue_timeout):
                await longtask_slots.acquire()
        except TimeoutError:
            return JSONResponse({"status": f"fail - {version}"}, status_code=500)
        try:
            await asyncio.sleep(seconds)
        finally:
            longtask_slots.release()
        return TaskStatus(status=f"OK - {version}")

    async def shutdown_after_response() -> None:
        state.request_shutdown("/k8s/shutdown")

    @app.get(
        "/k8s/shutdown",
        response_class=PlainTextResponse,
        dependencies=faults,
        responses={200: _text("the process shuts down after answering"), **_FORBIDDEN},
    )
    async def shutdown() -> PlainTextResponse:
        """Answers, then shuts down as on SIGTERM (following SHUTDOWN_MODE)."""
        return PlainTextResponse(
            f"OK - {version} shutting down ({config.shutdown_mode})",
            background=BackgroundTask(shutdown_after_response),
        )

    @app.get(
        "/k8s/memoryleak",
        response_class=PlainTextResponse,
        dependencies=faults,
        responses={
            200: _text("the leak started (or was running)"),
            500: _text("the leak stopped at its safety cap (no memory limit killed it)"),
            **_FORBIDDEN,
        },
    )
    async def memory_leak() -> PlainTextResponse:
        """Grows RSS until the container's memory limit kills it (OOMKilled, exit 137); with
        MEMORY_LIMIT_MB set the process SIGKILLs itself there instead. Without either, the
        leak stops at a safety cap and this answers 500."""
        if leak.capped:
            return PlainTextResponse(
                f"leak capped at {leak.cap_mib} MiB (RSS {rss_mib():.0f} MiB): no memory "
                "limit stopped it",
                status_code=500,
            )
        started = leak.start()
        what = "leaking memory" if started else "already leaking memory"
        until = (
            f"killed above {config.memory_limit_mb} MiB"
            if config.memory_limit_mb is not None
            else f"until the memory limit kills it (stops at {leak.cap_mib} MiB if none does)"
        )
        return PlainTextResponse(f"OK - {version} {what}: RSS {rss_mib():.0f} MiB, {until}")

    @app.get("/k8s/fullgc", response_model=Pause, dependencies=faults, responses=_FORBIDDEN)
    async def full_gc(seconds: PauseSeconds = config.fullgc_seconds) -> Pause:
        """A stop-the-world pause: blocks the event loop, so every request waits."""
        paused = stop_the_world(seconds)
        return Pause(requested_seconds=seconds, paused_seconds=round(paused, 4))

    @app.get(
        "/k8s/retry",
        response_class=PlainTextResponse,
        dependencies=faults,
        responses=_RETRY_RESPONSES,
    )
    async def retry() -> PlainTextResponse:
        """503, 409, 200 in turn (one counter for the whole process)."""
        return retry_answer(retry_cycle)

    @app.get(
        "/k8s/delayRetry",
        response_class=PlainTextResponse,
        dependencies=faults,
        responses=_RETRY_RESPONSES,
    )
    async def delay_retry(seconds: DelaySeconds = 1.0) -> PlainTextResponse:
        """Like /k8s/retry after a delay (its own counter)."""
        await asyncio.sleep(seconds)
        return retry_answer(delay_retry_cycle)

    @app.get(
        "/healthz/ready",
        response_class=PlainTextResponse,
        responses={200: _text("ready"), 503: _text("draining: shutdown has started")},
    )
    async def ready() -> PlainTextResponse:
        """Readiness: fails as soon as draining starts, so the endpoint is removed."""
        if state.draining:
            return PlainTextResponse("draining", status_code=503)
        return PlainTextResponse("ready")

    @app.get("/healthz/live", response_class=PlainTextResponse, responses={200: _text("live")})
    async def live() -> str:
        """Liveness: answers while the event loop runs (a long /k8s/fullgc stalls it)."""
        return "live"

    return app
