"""A tiny HTTP server on 127.0.0.1 that answers like the Kubernetes API with canned JSON.

It lets the tests check what the real ``kubernetes`` client sends (paths, query,
content types, bodies) and how the backend reads real HTTP answers, including a watch
stream that stays open until the test releases it. On its own it implements no
Kubernetes behaviour: each test registers the answers it needs, and an unregistered path
is a 404. With a ``store`` (``kube_store.ObjectStore``) mounted, every unregistered path is
answered by that stateful imitation of kube-apiserver instead (resourceVersions,
server-side apply and its conflicts, watches with bookmarks and 410 Gone); a canned
route still wins, so a test can make one answer stale or failing on purpose.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None


@dataclass
class Stream:
    """A watch response: these JSON lines, then the connection stays open until released."""

    lines: Iterable[dict[str, Any]]
    hold: threading.Event | None = None
    hold_seconds: float = 30.0
    start: threading.Event | None = None  # send the lines only once this is set


Handler = Callable[[Recorded], Reply | Stream]


class Store(Protocol):
    def handle(self, request: Recorded) -> Reply | Stream: ...

    def close(self) -> None: ...


@dataclass
class FakeApiServer:
    routes: dict[tuple[str, str, bool], Handler] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    store: Store | None = None

    def __post_init__(self) -> None:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                request = Recorded(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                server.requests.append(request)
                watching = query.get("watch") in ("true", "1")
                handler = server.routes.get((self.command, parts.path, watching))
                if handler is None:
                    handler = server.routes.get((self.command, parts.path, False))
                if handler is not None:
                    answer = handler(request)
                elif server.store is not None:
                    answer = server.store.handle(request)
                else:
                    answer = Reply(404, not_found(parts.path))
                if isinstance(answer, Stream):
                    self._stream(answer)
                else:
                    self._reply(answer)

            def _reply(self, reply: Reply) -> None:
                content_type = "application/json"
                if isinstance(reply.body, str):  # e.g. a pod log
                    data, content_type = reply.body.encode(), "text/plain"
                else:
                    data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, stream: Stream) -> None:
                # like the API server: chunked transfer encoding, one event per chunk
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if stream.start is not None:
                        stream.start.wait(stream.hold_seconds)
                    for line in stream.lines:
                        data = json.dumps(line).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    hold = stream.hold or server.released
                    hold.wait(stream.hold_seconds)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def on(
        self,
        method: str,
        path: str,
        handler: Handler | Reply | Stream | dict[str, Any],
        *,
        watch: bool = False,
    ) -> None:
        if isinstance(handler, dict):
            handler = Reply(200, handler)
        if isinstance(handler, Reply | Stream):
            fixed = handler
            self.routes[(method, path, watch)] = lambda _request: fixed
        else:
            self.routes[(method, path, watch)] = handler

    def find(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self.released.set()
        if self.store is not None:
            self.store.close()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def not_found(path: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": f"{path} not found",
        "reason": "NotFound",
        "code": 404,
    }


def kubeconfig_text(server: str, context: str = "kind-zdlab", token: str = "SECRET-TOKEN") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: test-user
  user:
    token: {token}
contexts:
- name: {context}
  context:
    cluster: test
    user: test-user
current-context: {context}
"""


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for ``condition()`` to be true, checking often; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
