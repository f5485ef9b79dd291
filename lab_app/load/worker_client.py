"""What both engines share: the error a failed request raises, fortio's retry-once rule, and
the per-socket bookkeeping fortio's JSON reports.

A worker's client (``H11Client`` in engine_h11.py, ``HttpxClient`` in engine_httpx.py) sends one
request at a time on its own keep-alive socket. The runner reads the same attributes from
either (the last response's ``status``/``version``/``flags``/``size``/``hsize``, ``conn_id``,
and the counters below), so they are defined once here, together with the one rule both must
apply the same way: which failure is ``reset_reused`` and which one fortio would retry.
"""

from __future__ import annotations

from array import array
from collections import Counter

from lab_app.load.options import LoadOptions
from lab_app.load.records import RESET, RESET_REUSED, TIMEOUT

USER_AGENT = "zdlab-load/0.1 (fortio-compatible)"


class RequestError(Exception):
    """A request that got no HTTP response; ``kind`` is one of the records' error classes.

    ``reused`` is True when it failed on a reused keep-alive socket before the first response
    byte: the case fortio's fast client retries once (see ``fortio_retry``).
    """

    __slots__ = ("kind", "reused")

    def __init__(self, kind: int, detail: str = "", *, reused: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.reused = reused


def request_failure(kind: int, detail: str, *, reused_before_response: bool) -> RequestError:
    """The error for a failed request, classified as fortio's fast client would see it.

    On a reused keep-alive socket, before the first response byte, a reset is the keep-alive
    race (the server closed a socket it had used just as this request went out): its own class,
    ``reset_reused``, so the lab can show what fortio hides. A timeout there stays a timeout, but
    fortio retries it too (the error comes at the first read), so both are marked ``reused``.
    """
    if reused_before_response and kind == RESET:
        return RequestError(RESET_REUSED, f"reused keep-alive socket: {detail}", reused=True)
    return RequestError(kind, detail, reused=reused_before_response and kind == TIMEOUT)


class WorkerClient:
    """A worker's client: the last response, the socket counters and fortio's retry-once.

    Subclasses implement ``_attempt`` (one request, raising :class:`RequestError`) and
    ``aclose``. Besides the last response it keeps what fortio's JSON reports per connection:
    ``sockets`` opened, ``connect_times`` (seconds, one per attempt, failed ones included, as
    fortio's ``ConnectionStats``) and ``ip_counts``.
    """

    def __init__(self, options: LoadOptions, socket_serial: list[int]) -> None:
        self._fortio_retry = options.fortio_retry
        self._serial = socket_serial  # shared across workers: a run-wide socket number
        self.sockets = 0
        self.conn_id = -1  # the current socket's number, -1 while none is open
        self.status = 0
        self.version = ""
        self.flags = ""
        self.size = 0
        self.hsize = 0
        self.retried_reused = 0  # requests retried on a new socket (fortio_retry only)
        self.connect_times = array("d")
        self.ip_counts: Counter[str] = Counter()

    async def fetch(self) -> None:
        """Send one GET, wait for the whole response; a transport error raises RequestError.

        With ``fortio_retry`` a reused socket that fails before the first response byte is
        closed and the request sent once more on a new socket, as fortio's fast client does.
        """
        try:
            await self._attempt()
        except RequestError as exc:
            if not (self._fortio_retry and exc.reused):
                raise
            self.retried_reused += 1
            await self._attempt()  # on a new socket: the failed attempt dropped the dead one

    async def _attempt(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def _socket_opened(self, peer: object) -> None:
        """Count a new socket: it gets the next run-wide number; its peer goes in ip_counts."""
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
            self.ip_counts[f"{host}:{peer[1]}"] += 1
        self.sockets += 1
        self.conn_id = self._serial[0]
        self._serial[0] += 1
