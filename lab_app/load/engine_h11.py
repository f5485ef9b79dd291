"""The fast engine: one keep-alive HTTP/1.1 connection per worker, asyncio Protocol + h11.

Why not ``httpx.AsyncClient`` for plain http: measured on this 2-core machine against an Envoy
direct response, the httpx stack (client -> httpcore -> anyio -> h11) costs 0.5 to 0.8 ms of CPU
a request and adds about 1 ms to every latency it reports, while this engine (the same h11
parser, on a bare asyncio Protocol with a prepared request) costs 0.15 to 0.3 ms and reports
latencies close to Go's ``hey``. The httpx engine (engine_httpx.py) stays for https and as a
cross-check.

What it guarantees: exactly one socket per worker while nothing fails, and by default every
failed request is recorded, never retried. That is *not* plain fortio: fortio's fast client
(``fhttp/http_client.go``, ``StreamFetch``/``readResponse``) retries a request once on a new
socket when a *reused* keep-alive socket fails before the first response byte ("Closing dead
socket"), which hides the keep-alive race a rollout can cause. Here such a failure is its own
class, ``reset_reused``, and ``fortio_retry=True`` restores fortio's retry-once (counted in
``retried_reused``; like fortio it also retries a reused socket that timed out before any byte).
A request that was written and then saw a *fresh* socket die counts as ``reset``; a socket the
server closed *while idle* (noticed before sending) is simply reopened, which is not a retry
because nothing was sent on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import cast

import h11

from lab_app.load.options import LoadOptions
from lab_app.load.records import OTHER, REFUSED, RESET, TIMEOUT
from lab_app.load.worker_client import USER_AGENT, RequestError, WorkerClient, request_failure

__all__ = ["USER_AGENT", "H11Client", "RequestError"]


_RESPONSE = h11.Response
_INFORMATIONAL = h11.InformationalResponse
_DATA = h11.Data
_END = h11.EndOfMessage
_NEED_DATA = h11.NEED_DATA
_PAUSED = h11.PAUSED
_MUST_CLOSE = h11.MUST_CLOSE


class _Connection(asyncio.Protocol):
    """One socket: feeds bytes to h11 and completes the pending request's future."""

    __slots__ = (
        "closed",
        "conn",
        "flags",
        "got",
        "hsize",
        "lost",
        "served",
        "size",
        "status",
        "transport",
        "version",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.lost = False
        self.status = 0
        self.version = ""
        self.flags = ""
        self.size = 0
        self.hsize = 0
        self.served = 0  # complete responses read on this socket: > 0 means "reused"
        self.got = 0  # bytes received since the current request was sent

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection() hands a stream protocol an asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        self.got += len(data)
        try:
            conn.receive_data(data)
            self._drain_events()
        except h11.ProtocolError as exc:
            self._fail(RequestError(OTHER, f"bad HTTP response: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    def _drain_events(self) -> None:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is _NEED_DATA or event is _PAUSED:
                return
            # exact-type tests: cheaper than isinstance on this hot path, and mypy narrows them
            if type(event) is _DATA:
                self.size += len(event.data)
            elif type(event) is _RESPONSE:
                self.status = event.status_code
                # fortio's header size: the status line, the header lines and the blank line
                # ("HTTP/1.1 200 OK\r\n" ... "\r\n"), as h11 hands them back.
                hsize = 5 + len(event.http_version) + 5 + len(event.reason) + 2 + 2
                for name, value in event.headers:
                    hsize += len(name) + len(value) + 4
                    if name == b"x-app-version":
                        self.version = value.decode("latin-1")
                    elif name == b"x-envoy-flags":
                        self.flags = value.decode("latin-1")
                self.hsize = hsize
            elif type(event) is _END:
                self.served += 1
                waiter = self.waiter
                self.waiter = None
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                return
            elif type(event) is not _INFORMATIONAL:  # ConnectionClosed before a full response
                return

    def eof_received(self) -> bool:
        # A body delimited by the end of the connection ends here; anything else is a reset.
        try:
            self.conn.receive_data(b"")
            self._drain_events()
        except h11.ProtocolError:
            pass
        self._fail(RequestError(RESET, "connection closed by the server before the response"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        detail = f"connection lost: {exc!r}" if exc else "connection closed by the server"
        self._fail(RequestError(RESET, detail))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: RequestError) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class H11Client(WorkerClient):
    """A worker's HTTP client: a prepared GET, one connection at a time.

    No retries unless ``options.fortio_retry`` (then fortio's one retry of a reused socket that
    failed before the first response byte: ``WorkerClient.fetch``).
    """

    def __init__(self, options: LoadOptions, socket_serial: list[int]) -> None:
        super().__init__(options, socket_serial)
        target = options.target
        self._host = target.host
        self._port = target.port
        self._timeout = options.timeout
        headers = [("Host", target.host_header), ("User-Agent", USER_AGENT)]
        headers.extend(options.headers)
        self._request = h11.Request(method="GET", target=target.path, headers=headers)
        self._end = h11.EndOfMessage()
        self._loop = asyncio.get_running_loop()
        self._proto: _Connection | None = None
        self._all: list[_Connection] = []

    async def _connect(self, deadline: float) -> _Connection:
        loop = self._loop
        self.conn_id = -1  # a request that fails to connect had no socket
        began = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                transport, proto = await loop.create_connection(
                    lambda: _Connection(loop), self._host, self._port
                )
        except TimeoutError:
            raise RequestError(TIMEOUT, "connect timeout") from None
        except ConnectionRefusedError as exc:
            raise RequestError(REFUSED, str(exc)) from None
        except ConnectionResetError as exc:
            raise RequestError(RESET, str(exc)) from None
        except OSError as exc:
            raise RequestError(OTHER, f"connect failed: {exc}") from None
        finally:
            self.connect_times.append(time.perf_counter() - began)
        self._socket_opened(transport.get_extra_info("peername"))
        self._all.append(proto)
        if len(self._all) > 8:  # keep only the ones whose close we may still await
            self._all = [p for p in self._all if not p.closed.done()]
        return proto

    def _on_timeout(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(RequestError(TIMEOUT, "no response within the timeout"))

    async def _attempt(self) -> None:
        loop = self._loop
        deadline = loop.time() + self._timeout
        proto = self._proto
        if proto is None or proto.lost or proto.transport is None or proto.transport.is_closing():
            self._drop()
            proto = self._proto = await self._connect(deadline)
        conn = proto.conn
        transport = proto.transport
        assert transport is not None  # connection_made() ran before create_connection returned
        reused = proto.served > 0
        proto.status = 0
        proto.version = ""
        proto.flags = ""
        proto.size = 0
        proto.got = 0
        waiter: asyncio.Future[None] = loop.create_future()
        proto.waiter = waiter
        transport.write(conn.send(self._request) + conn.send(self._end))
        timer = loop.call_at(deadline, self._on_timeout, waiter)
        try:
            await waiter
        except RequestError as exc:
            self._drop()  # the next attempt (fortio_retry's, or the next request) opens a new one
            before_response = reused and proto.got == 0
            raise request_failure(
                exc.kind, str(exc), reused_before_response=before_response
            ) from None
        except asyncio.CancelledError:
            self._drop()
            raise
        finally:
            timer.cancel()
        self.status = proto.status
        self.version = proto.version
        self.flags = proto.flags
        self.size = proto.size
        self.hsize = proto.hsize
        if conn.our_state is _MUST_CLOSE or conn.their_state is _MUST_CLOSE:
            self._drop()
        else:
            conn.start_next_cycle()

    def _drop(self) -> None:
        proto = self._proto
        self._proto = None
        if proto is not None and proto.transport is not None and not proto.lost:
            proto.transport.abort()

    async def aclose(self) -> None:
        """Close the socket and wait (bounded) until asyncio has really released it."""
        self._drop()
        pending = [p.closed for p in self._all if not p.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self._all.clear()
