"""The httpx engine: one ``httpx.AsyncHTTPTransport`` per worker, pinned to one connection.

Used for https targets and as a cross-check of the fast engine. It calls the transport
directly with a prepared ``httpx.Request`` (no client-level auth/redirect/cookie work), with
``retries=0`` and ``max_connections=1`` so, like fortio's threads, each worker owns exactly one
keep-alive socket and a failed request is counted, never retried. Sockets opened are counted
with httpcore's ``trace`` extension (``connection.connect_tcp.complete``).
"""

from __future__ import annotations

import errno
import importlib.util
import ssl
import sys

import httpx

from lab_app.load.engine_h11 import USER_AGENT, RequestError
from lab_app.load.options import LoadOptions
from lab_app.load.records import OTHER, REFUSED, RESET, TIMEOUT

# httpcore imports the optional ``sniffio`` inside a per-request function; when it is not
# installed (anyio >= 4.11 stopped depending on it) every request pays a failed import
# (~150 us here; encode/httpcore#1103). A ``None`` entry makes that import fail at once, which
# is exactly what happens anyway, only cheaper.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

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


class HttpxClient:
    """A worker's client on httpx: same attributes as H11Client."""

    def __init__(self, options: LoadOptions, socket_serial: list[int]) -> None:
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
        self._serial = socket_serial
        self.sockets = 0
        self.conn_id = -1
        self.status = 0
        self.version = ""
        self.flags = ""
        self.size = 0
        self.hsize = 0

    async def _trace(self, event_name: str, info: dict) -> None:
        if event_name == "connection.connect_tcp.started":
            self.conn_id = -1
        elif event_name == "connection.connect_tcp.complete":
            self.sockets += 1
            self.conn_id = self._serial[0]
            self._serial[0] += 1

    async def fetch(self) -> None:
        try:
            response = await self._transport.handle_async_request(self._request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise RequestError(classify(exc), str(exc)) from None
        except OSError as exc:
            raise RequestError(classify(exc), str(exc)) from None
        headers = response.headers
        self.status = response.status_code
        self.version = headers.get("x-app-version", "")
        self.flags = headers.get("x-envoy-flags", "")
        self.size = len(body)
        self.hsize = sum(len(k) + len(v) + 4 for k, v in headers.raw)

    async def aclose(self) -> None:
        await self._transport.aclose()
