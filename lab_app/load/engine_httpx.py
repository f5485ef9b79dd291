"""The httpx engine: one ``httpx.AsyncHTTPTransport`` per worker, pinned to one connection.

Used for https targets and as a cross-check of the fast engine. It calls the transport
directly with a prepared ``httpx.Request`` (no client-level auth/redirect/cookie work), with
``retries=0`` and ``max_connections=1`` so, like fortio's threads, each worker owns exactly one
keep-alive socket, and by default a failed request is counted, never retried (fortio's fast
client would retry a dead reused socket once: see engine_h11.py and ``fortio_retry``). Sockets
opened, connect times and peer addresses come from httpcore's ``trace`` extension
(``connection.connect_tcp.*``).

``reset_reused`` here is an approximation: httpcore does not expose the bytes received, so a
request counts as failed "before the first response byte" when it failed on a socket it did not
open (no ``connect_tcp`` during this request) before the response *headers* were complete
(``http11.receive_response_headers.complete``). A server that dies in the middle of a status
line is therefore ``reset_reused`` here and ``reset`` in the h11 engine; a clean close or RST
after the request, the keep-alive race, is ``reset_reused`` in both.
"""

from __future__ import annotations

import errno
import importlib.util
import ssl
import sys
import time
from typing import Any

import httpx

from lab_app.load.options import LoadOptions
from lab_app.load.records import OTHER, REFUSED, RESET, TIMEOUT
from lab_app.load.worker_client import USER_AGENT, WorkerClient, request_failure

# httpcore imports the optional ``sniffio`` inside a per-request function; when it is not
# installed (anyio >= 4.11 stopped depending on it) every request pays a failed import
# (~150 us here; encode/httpcore#1103). A ``None`` entry makes that import fail at once, which
# is exactly what happens anyway, only cheaper.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # None blocks the import: see above

_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One shared context: building one per transport costs ~35 ms (loading the CA bundle)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def classify(exc: BaseException) -> int:
    """Map an httpx/httpcore exception to refused/reset/timeout/other."""
    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for item in chain:
        if isinstance(item, ConnectionRefusedError) or (
            isinstance(item, OSError) and item.errno == errno.ECONNREFUSED
        ):
            return REFUSED
    text = " ".join(str(item) for item in chain).lower()
    if isinstance(exc, httpx.ConnectError):
        return REFUSED if "refused" in text else OTHER
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return RESET
    if "reset" in text or "disconnected" in text or "broken pipe" in text:
        return RESET
    return OTHER


class HttpxClient(WorkerClient):
    """A worker's client on httpx: same attributes as H11Client (both are WorkerClients)."""

    def __init__(self, options: LoadOptions, socket_serial: list[int]) -> None:
        super().__init__(options, socket_serial)
        target = options.target
        timeout = options.timeout
        self._transport = httpx.AsyncHTTPTransport(
            verify=_ssl_context(),
            retries=0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        headers = {"Host": target.host_header, "User-Agent": USER_AGENT}
        headers.update(dict(options.headers))
        self._request = httpx.Request(
            "GET",
            target.url,
            headers=headers,
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout},
                "trace": self._trace,
            },
        )
        self._connect_began = 0.0
        self._connected = False  # a connect_tcp happened during the current attempt
        self._headers_done = False  # the current attempt's response headers were read

    async def _trace(self, event_name: str, info: dict[str, Any]) -> None:
        if event_name == "connection.connect_tcp.started":
            self.conn_id = -1
            self._connected = True
            self._connect_began = time.perf_counter()
        elif event_name == "connection.connect_tcp.complete":
            self.connect_times.append(time.perf_counter() - self._connect_began)
            stream = info.get("return_value")
            try:
                peer = stream.get_extra_info("server_addr") if stream is not None else None
            except Exception:  # a backend without the key: the count is only informative
                peer = None
            self._socket_opened(peer)
        elif event_name == "connection.connect_tcp.failed":
            self.connect_times.append(time.perf_counter() - self._connect_began)
        elif event_name == "http11.receive_response_headers.complete":
            self._headers_done = True

    async def _attempt(self) -> None:
        self._connected = False
        self._headers_done = False
        try:
            response = await self._transport.handle_async_request(self._request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except (httpx.HTTPError, OSError) as exc:
            # httpcore closed the failed connection: fortio_retry's attempt opens a new one.
            # "Before the first response byte" is approximated by "before the headers" here.
            before_response = not self._connected and not self._headers_done
            raise request_failure(
                classify(exc), str(exc), reused_before_response=before_response
            ) from None
        headers = response.headers
        self.status = response.status_code
        self.version = headers.get("x-app-version", "")
        self.flags = headers.get("x-envoy-flags", "")
        self.size = len(body)
        reason = response.extensions.get("reason_phrase", b"")
        # fortio's header size: status line + header lines + the blank line
        status_line = len(response.http_version) + 5 + len(reason) + 2
        self.hsize = status_line + sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2

    async def aclose(self) -> None:
        await self._transport.aclose()
