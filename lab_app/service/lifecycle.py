"""Lifecycle state shared by the HTTP app and the server, and the lifecycle log lines.

Why a shared object: readiness (``/healthz/ready``), the ``Connection: close`` header and the
in-flight count all depend on where the process is in its shutdown, which the server decides
(on SIGTERM) and the app reports. One small object both hold keeps that in one place.

Log lines go to stderr, one per event, as ``zdlab-service <event> key=value ...`` so the
embedded backend, a notebook or a human can follow a pod's life with ``grep``. Events:
``starting``, ``ready``, ``sigterm``, ``draining``, ``listener-closed``, ``inflight-cut``,
``exit``, ``oom`` (a ``MEMORY_LIMIT_MB`` self-kill), ``leak-capped`` (/k8s/memoryleak stopped
at its safety cap).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab_app.service.config import ServiceConfig

LOG_PREFIX = "zdlab-service"
EVENTS = (
    "starting",
    "ready",
    "sigterm",
    "draining",
    "listener-closed",
    "inflight-cut",
    "exit",
    "oom",
    "leak-capped",
)


def format_event(event: str, **fields: object) -> str:
    """``zdlab-service <event> k=v ...``; values with spaces, quotes or ``=`` are JSON-quoted."""
    parts = [LOG_PREFIX, event]
    for key, value in fields.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        if not text or any(c.isspace() or c in '"=' for c in text):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(event: str, **fields: object) -> None:
    """Write one lifecycle line to stderr and flush it (the process may be killed next)."""
    if event not in EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}; known: {', '.join(EVENTS)}")
    sys.stderr.write(format_event(event, **fields) + "\n")
    sys.stderr.flush()


def _sigterm_self(source: str) -> None:
    """Default shutdown request when no server is attached: behave exactly as on SIGTERM."""
    del source
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class ServiceState:
    """What the app and the server share about the running process.

    ``request_shutdown(source)`` is replaced by the server so ``/k8s/shutdown`` follows the
    shutdown mode; without a server it sends SIGTERM to this process.
    """

    config: ServiceConfig
    start_time: float = field(default_factory=time.time)
    draining: bool = False
    inflight: int = 0
    request_shutdown: Callable[[str], None] = _sigterm_self
