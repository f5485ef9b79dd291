"""The uvicorn server with the two shutdown behaviours the lab compares.

Why a custom server: uvicorn on its own is already graceful (it finishes in-flight requests on
SIGTERM), so the *naive* behaviour of the original Spring Boot 2.1 service, where SIGTERM cuts
requests in flight, has to be built on purpose; and the *graceful* behaviour the lab teaches
needs steps uvicorn does not have (readiness failing and a drain period with
``Connection: close`` before the listener closes, then a bounded wait for in-flight work).

naive
    On SIGTERM/SIGINT: close the listener, reset every connection with a request in flight
    (TCP RST; the client sees a connection reset, a proxy answers ``503 UC``), close idle
    ones, and exit at once with status 128 + signal (143 for SIGTERM, as a JVM). After
    ``/k8s/shutdown`` the exit status is 0, like the original's ``System.exit(0)``.
graceful
    On SIGTERM/SIGINT: readiness answers 503 at once and responses carry
    ``Connection: close``; keep serving for DRAIN_SECONDS; close the listener; let in-flight
    requests finish for up to GRACE_SECONDS (then reset what is left); exit 0. A second
    signal skips what is left of the drain and the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Generator, Iterable
from typing import Any

import uvicorn

from lab_app.service.app import create_app
from lab_app.service.config import ServiceConfig
from lab_app.service.lifecycle import ServiceState, log_event

SIGNALS = (signal.SIGTERM, signal.SIGINT)
LISTEN_BACKLOG = 2048


class ServiceStartError(RuntimeError):
    """The service cannot start (e.g. its port is taken); the message says why and where."""


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind the listening socket before uvicorn starts, so a busy port is a clear error
    (uvicorn alone logs it and exits 1) and ``port=0`` gives a port we can report."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ServiceStartError(f"cannot listen on host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceStartError(
                f"port {port} on {host} is already in use by another program; "
                "stop it or choose another --port"
            ) from None
        raise ServiceStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _in_flight(connection: Any) -> bool:
    """True if this uvicorn connection has a request whose response is not complete."""
    cycle = getattr(connection, "cycle", None)
    return cycle is not None and not cycle.response_complete


def _reset(connection: Any) -> None:
    """Abort a connection with a TCP RST (SO_LINGER 0), as a killed process's socket would."""
    transport = getattr(connection, "transport", None)
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cut_connections(connections: Iterable[Any]) -> int:
    """Reset the connections with a request in flight, close the idle ones; return the cut."""
    cut = 0
    for connection in list(connections):
        if _in_flight(connection):
            _reset(connection)
            cut += 1
        else:
            transport = getattr(connection, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()
    return cut


class DemoServer(uvicorn.Server):
    """uvicorn's server with the lab's signal handling and the naive/graceful shutdowns."""

    def __init__(self, config: uvicorn.Config, service: ServiceConfig, state: ServiceState):
        super().__init__(config)
        self.service = service
        self.state = state
        self.exit_code = 0
        self._stopping = False
        self._hurry = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        state.request_shutdown = self.request_shutdown

    # -- signals ------------------------------------------------------------------------
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Handle SIGTERM/SIGINT on the loop; unlike uvicorn, do not re-raise them at the end
        (that would turn a graceful exit 0 into -15)."""
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in SIGNALS:
                self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self.begin_shutdown(f"signal:{signal.Signals(sig).name}", 128 + sig)

    def request_shutdown(self, source: str) -> None:
        """Shut down as on SIGTERM, from any thread (used by /k8s/shutdown)."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self.begin_shutdown, source, 0)

    def begin_shutdown(self, source: str, naive_exit_code: int) -> None:
        """Start the configured shutdown; a second call hurries a graceful one."""
        if self._stopping:
            self._hurry.set()
            return
        self._stopping = True
        mode = self.service.shutdown_mode
        inflight = sum(_in_flight(c) for c in self.server_state.connections)
        log_event("sigterm", source=source, mode=mode, inflight=inflight, pod=self.service.pod_name)
        if not self.started:
            self.should_exit = True  # uvicorn then skips its main loop
            return
        if mode == "naive":
            self._exit_naively(naive_exit_code)
        else:
            self.state.draining = True
            log_event("draining", seconds=self.service.drain_seconds, pod=self.service.pod_name)
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), timeout=self.service.drain_seconds)
        self.should_exit = True  # uvicorn's main loop sees it within 0.1 s -> shutdown()

    def _exit_naively(self, exit_code: int) -> None:
        for server in getattr(self, "servers", []):
            server.close()
        log_event("listener-closed", pod=self.service.pod_name)
        cut = cut_connections(self.server_state.connections)
        log_event("inflight-cut", count=cut, reason="naive-shutdown", pod=self.service.pod_name)
        log_event("exit", code=exit_code, pod=self.service.pod_name)
        sys.stdout.flush()
        # No cleanup on purpose: like a process that just dies, the kernel closes the sockets
        # (RST where SO_LINGER 0 was set, FIN elsewhere).
        os._exit(exit_code)

    # -- startup / graceful shutdown ------------------------------------------------------
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            log_event(
                "ready",
                host=host,
                port=port,
                version=self.service.app_version,
                mode=self.service.shutdown_mode,
                pod=self.service.pod_name,
                pid=os.getpid(),
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Graceful: close the listener, let in-flight requests finish within GRACE_SECONDS,
        then reset whatever is still running."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        log_event("listener-closed", pod=self.service.pod_name)
        connections = self.server_state.connections
        for connection in list(connections):
            connection.shutdown()  # idle: closed now; busy: closed after its response
        deadline = time.monotonic() + self.service.grace_seconds
        while connections and not self._hurry.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), timeout=min(remaining, 0.05))
        if connections:
            reason = "second-signal" if self._hurry.is_set() else "grace-exceeded"
            cut = cut_connections(connections)
            log_event("inflight-cut", count=cut, reason=reason, pod=self.service.pod_name)
            # The cut is on purpose and logged above: keep uvicorn from logging each cancelled
            # request as "Exception in ASGI application" with a traceback.
            logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            for task in list(self.server_state.tasks):
                task.cancel()
        await self.lifespan.shutdown()


def run_service(service: ServiceConfig, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Run the service until it shuts down; return the process exit status.

    Raises :class:`ServiceStartError` if it cannot listen on ``host:port``.
    """
    log_event(
        "starting",
        version=service.app_version,
        image_id=service.image_id,
        mode=service.shutdown_mode,
        pod=service.pod_name,
        pid=os.getpid(),
    )
    state = ServiceState(service)
    app = create_app(service, state=state)
    listener = bind_listener(host, port)
    uv_config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        ws="none",
        lifespan="off",
        timeout_keep_alive=service.keepalive_seconds,  # type: ignore[arg-type]  # float is fine
        log_level="warning",
        access_log=False,
    )
    server = DemoServer(uv_config, service, state)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    log_event("exit", code=server.exit_code, pod=service.pod_name)
    return server.exit_code
