"""A tiny HTTP/1.1 upstream for the Envoy tests (keep-alive, one header per instance).

In-process asyncio server so a test starts and stops pods in milliseconds; it answers every
request with ``x-app-version: VERSION`` and ``x-pod: NAME``; ``/status/NNN`` answers NNN.
Not lab_app.service on purpose: these tests check the proxy layer alone.
"""

from __future__ import annotations

import asyncio
import contextlib


class Upstream:
    def __init__(self, version: str, name: str = "") -> None:
        self.version = version
        self.name = name or f"pod-{version}"
        self.port = 0
        self.requests = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and every open connection (a stopped pod)."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                status = 200
                if path.startswith("/status/"):
                    status = int(path.split("/")[2])
                body = f"{self.version} {self.name} {method} {path}\n".encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
                    f"content-type: text/plain\r\nx-app-version: {self.version}\r\n"
                    f"x-pod: {self.name}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
