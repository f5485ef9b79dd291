"""The kubelet's probe and hook handlers: one HTTP GET or TCP connect, like Kubernetes does.

Why hand-rolled on asyncio streams: a probe must open a *new* connection each time and send
``Connection: close`` (a kubelet does not pool probe connections), must not block the event
loop the load generator runs on, and costs a probe every second per pod. httpx would pool
connections per client and cost more per call than the probe itself; a 20-line GET does
exactly what the kubelet does. Success is a status in [200, 400), as in Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib

from lab_app.cluster.embedded.specs import HttpGet, TcpSocket

USER_AGENT = "kube-probe/1.30 (zdlab embedded kubelet)"


async def http_get(
    port: int, path: str, *, timeout: float, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[bool, str]:
    """GET http://127.0.0.1:PORT/PATH; returns (success, short reason)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Accept: */*\r\nConnection: close\r\n{extra}\r\n".encode("latin-1")
            )
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return False, f"timeout after {timeout:g}s"
    except OSError as exc:
        return False, exc.strerror or type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = status_line.decode("latin-1", "replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, "malformed HTTP response"
    code = int(parts[1])
    return 200 <= code < 400, f"HTTP {code}"


async def tcp_connect(port: int, *, timeout: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except TimeoutError:
        return False, f"timeout after {timeout:g}s"
    except OSError as exc:
        return False, exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, "connected"


async def run_handler(handler: HttpGet | TcpSocket, port: int, timeout: float) -> tuple[bool, str]:
    if isinstance(handler, HttpGet):
        return await http_get(port, handler.path, timeout=timeout, headers=handler.headers)
    return await tcp_connect(port, timeout=timeout)
