"""Helpers for the reliability tests (a module name of its own: test directories share one
import namespace).

Every wait is on a condition with a deadline; nothing here sleeps a fixed time to
synchronise.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

# two_labs_worker.py imports this module as a plain script, without the tests' conftest
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers import ISTIO, alive, eventually, manifest  # noqa: F401 (re-exported)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"


def one_replica(name: str = "deployment.yaml") -> dict[str, Any]:
    doc = manifest(name)
    doc["spec"]["replicas"] = 1
    return doc


def tree(pid: int) -> list[psutil.Process]:
    """``pid``'s live descendants (the processes a CLI or a lab started)."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for p in kids:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def listeners(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every TCP socket ``pid`` listens on."""
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]


def take_port(port: int, timeout: float = 5.0) -> socket.socket:
    """Listen on 127.0.0.1:``port`` as 'another program' would, as soon as it is free.

    Deliberately a *blocking* loop: called right after a SIGKILL, it holds the event loop, so
    the lab's supervisor cannot restart the killed process before the port is taken.
    """
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)  # a busy-wait on the kernel, not a synchronisation sleep


async def get(url: str, timeout: float = 3.0) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        return await client.get(url, headers={"connection": "close"})


async def answers_ok(url: str) -> bool:
    """One request answers 200 (any error counts as no)."""
    try:
        return (await get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def all_ok(url: str, n: int = 5) -> bool:
    """``n`` requests in a row answer 200."""
    for _ in range(n):
        if not await answers_ok(url):
            return False
    return True


def kinds_of(events: Iterable[Any], obj: str) -> list[str]:
    return [e.kind for e in events if e.obj == obj]


class CountingServer:
    """A real HTTP/1.1 keep-alive server on 127.0.0.1 that counts the GETs it answers (the
    target of ``zdlab load`` in the tests: the test can wait for N requests to have landed)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = b"OK - v1"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.send_header("x-app-version", "v1")
                self.end_headers()
                self.wfile.write(body)
                with counter._lock:
                    counter.count += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/k8s/demo"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
