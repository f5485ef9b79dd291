"""A tiny real HTTP/1.1 keep-alive server for the load generator's tests, run as a subprocess.

Run: ``python target_server.py [--version v1]``; it binds 127.0.0.1 on a free port and prints
``READY <port>``. Paths:
  /ok              200, header x-app-version
  /status/<code>   that status; 503 gets ``x-envoy-flags: UF`` (like Envoy's own 503s),
                   every other answer ``x-envoy-flags: -`` (Envoy's "no flags")
  /mix             alternates 200 and 503 (UF)
  /slow/<ms>       200 after <ms> milliseconds
  /close           200 with ``Connection: close`` (the server then closes the socket)
  /idle-close      200, then the server closes the socket without saying so (like a
                   keep-alive timeout firing between two requests)
  /drop-reused     200 for the first request on a connection; any later request on the same
                   connection is read and the socket closed without an answer (EOF): the
                   keep-alive race, made deterministic
  /rst-reused      the same, but the socket is reset (SO_LINGER 0, RST) instead of closed
  /__count         how many requests it served (this path excluded), as the body

``TargetServer`` starts it and waits for READY with a deadline; ``kill()`` SIGKILLs it, which
is the "target vanishes mid-run" case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


async def serve(version: str) -> None:
    count = 0
    mix = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count, mix
        on_this_connection = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                on_this_connection += 1
                if path in ("/drop-reused", "/rst-reused") and on_this_connection > 1:
                    count += 1
                    sock = writer.get_extra_info("socket")
                    if path == "/rst-reused" and sock is not None:
                        linger = struct.pack("ii", 1, 0)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                        writer.transport.abort()
                    break
                status, body, extra = 200, b"ok", ""
                close = False
                if path == "/__count":
                    body = str(count).encode()
                else:
                    count += 1
                    if path.startswith("/status/"):
                        status = int(path.rsplit("/", 1)[1])
                    elif path == "/mix":
                        mix += 1
                        status = 200 if mix % 2 else 503
                    elif path.startswith("/slow/"):
                        await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
                    elif path == "/close":
                        close = True
                        extra += "Connection: close\r\n"
                    elif path == "/idle-close":
                        close = True
                    # like Envoy's %RESPONSE_FLAGS%: "UF" on its own 503s, "-" for none
                    extra += "x-envoy-flags: UF\r\n" if status == 503 else "x-envoy-flags: -\r\n"
                    body = b"ok" if status == 200 else b"no"
                writer.write(
                    (
                        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                        f"content-length: {len(body)}\r\nx-app-version: {version}\r\n{extra}\r\n"
                    ).encode()
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


class TargetServer:
    """The test target as a child process; always stopped by ``stop()`` (fixtures call it)."""

    def __init__(self, version: str = "v1") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--version", version],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = self._wait_ready(deadline=time.monotonic() + 15)
        self.base = f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, deadline: float) -> int:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = self.proc.stdout.readline()
                    if line.startswith("READY "):
                        return int(line.split()[1])
                    if not line:
                        break
        self.stop()
        raise RuntimeError("test target server did not become ready")

    def url(self, path: str = "/ok") -> str:
        return self.base + path

    def count(self) -> int:
        with urllib.request.urlopen(self.base + "/__count", timeout=5) as resp:
            return int(resp.read())

    def kill(self) -> None:
        """SIGKILL: the target vanishes, open connections are reset by the kernel."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="v1")
    asyncio.run(serve(parser.parse_args().version))
