"""The zdlab demo service: a FastAPI + uvicorn port of the original Spring Boot demo controller.

It is what every pod of the lab runs, as a process (embedded backend) or in the container image
``zdlab/demo:vN`` (kubernetes backend). This package imports only the standard library, FastAPI
and uvicorn (with Starlette and pydantic): it is copied into the image on its own.

Run: ``python -m lab_app.service --host 127.0.0.1 --port 8080`` or ``zdlab serve``. Configuration
is environment only (docs/architecture.md lists the variables); an invalid value stops the
process with exit status 2 and a message naming the variable and the accepted values.

Endpoints (every response, errors included, carries ``x-app-version: <APP_VERSION>``):

| endpoint | fault | answer |
|---|---|---|
| `GET /ping` |  | `200 pong` (text) |
| `GET /k8s/demo` |  | `200 OK - v1` (text); with `FAULT_DELAY_MS` later, with `FAULT_ERROR_RATE` sometimes `500 ERROR - v1 (injected fault)` |
| `GET /version` |  | `200` JSON `{version, pod, image_id, start_time, shutdown_mode, inflight, draining}` (`start_time` in epoch seconds; `inflight` excludes this request) |
| `GET /k8s/longTask?seconds=10` |  | works `seconds` (0..60, default 10) on a pool of `LONGTASK_WORKERS` (5), then `200 {"status": "OK - v1"}`; `500 {"status": "fail - v1"}` if no worker frees up within 11 s; `422` for a bad `seconds` |
| `GET /k8s/shutdown` | yes | `200`, then the process shuts down as on SIGTERM (following `SHUTDOWN_MODE`; naive exits 0 here, like the original's `System.exit(0)`) |
| `GET /k8s/memoryleak` | yes | `200`; memory grows (about 64 MiB/s) until the container's memory limit kills the process (`OOMKilled`, exit 137). With `MEMORY_LIMIT_MB` set, `oom` is logged and the process SIGKILLs itself once RSS crosses it (a node reports that as `Error`, exit 137). With neither, growth stops at a 1024 MiB safety cap, `leak-capped` is logged and later calls answer `500` |
| `GET /k8s/fullgc?seconds=N` | yes | blocks the event loop for `N` s (0..60, default `FULLGC_SECONDS`) like a stop-the-world GC: every concurrent request waits; then `200 {requested_seconds, paused_seconds}` |
| `GET /k8s/retry` | yes | `503`, `409`, `200`, `503`, ... in turn (one counter for the process) |
| `GET /k8s/delayRetry?seconds=N` | yes | the same cycle (its own counter) after `N` s (0..10, default 1) |
| `GET /healthz/ready` |  | `200 ready`; `503 draining` from the moment shutdown starts |
| `GET /healthz/live` |  | `200 live` (stalls while `/k8s/fullgc` blocks the loop) |

Fault endpoints: `403 {"detail": "fault endpoint ... is disabled ..."}` unless
`ENABLE_FAULT_ENDPOINTS=true`. A bad `seconds` (negative, too large, not a number) is `422`.
`/openapi.json` and `/docs` describe the same API.

Shutdown (`SHUTDOWN_MODE`, see ``server.py``): `naive` cuts requests in flight at SIGTERM (TCP
reset) and exits 143 at once, like Spring Boot 2.1 without graceful shutdown; `graceful` fails
readiness, keeps serving with `Connection: close` for `DRAIN_SECONDS`, closes the listener,
lets in-flight requests finish within `GRACE_SECONDS`, and exits 0. Lifecycle lines on stderr:
`zdlab-service <event> key=value ...` for `starting`, `ready`, `sigterm`, `draining`,
`listener-closed`, `inflight-cut`, `exit`, `oom`, `leak-capped`.
"""  # noqa: E501 (the endpoint table is copied into the README as it is)

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab_app.service.app import create_app
    from lab_app.service.config import ServiceConfig, ServiceConfigError, load_config
    from lab_app.service.server import ServiceStartError, run_service

__all__ = [
    "ServiceConfig",
    "ServiceConfigError",
    "ServiceStartError",
    "create_app",
    "load_config",
    "run_service",
]

_EXPORTS = {
    "create_app": "lab_app.service.app",
    "ServiceConfig": "lab_app.service.config",
    "ServiceConfigError": "lab_app.service.config",
    "load_config": "lab_app.service.config",
    "ServiceStartError": "lab_app.service.server",
    "run_service": "lab_app.service.server",
}


def __getattr__(name: str) -> Any:
    """Import on first use, so the CLI does not load FastAPI just to print its help."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
