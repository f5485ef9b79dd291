"""Every request of a run, kept compactly (struct of arrays) and appended to without allocation.

A 100k-request run must not cost 100k Python objects, so each field is an ``array`` column
(about 40 bytes a request in all); strings (versions, Envoy flags) are interned to small ints.
Times are offsets in seconds from the run's anchor (``perf_counter`` at start); the anchor's
wall-clock time (``time.time()``) turns them into the lab's common clock.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any, NamedTuple

# Error classes. fortio reports all of them as code -1; the lab keeps them apart, because "the
# server reset a connection it had been using" and "the run was stopped with this request in
# flight" call for different fixes. The numbers are stored in the log: only ever append.
OK = 0
REFUSED = 1
RESET = 2
TIMEOUT = 3
OTHER = 4
#: a *reused* keep-alive socket failed (reset, EOF, broken pipe) before the first response
#: byte: the keep-alive race that fortio's fast client retries once ("Closing dead socket").
RESET_REUSED = 5
#: sent, but the run was stopped or cancelled before an answer came (end = the moment of
#: cancellation): recorded so that stopping a run never makes requests disappear.
CANCELLED = 6
ERROR_NAMES = ("", "refused", "reset", "timeout", "other", "reset_reused", "cancelled")
ERROR_CLASSES = ERROR_NAMES[1:]


def is_success(code: int) -> bool:
    """fortio's rule: 2xx and 418 are OK, everything else (and -1) is an error."""
    return 200 <= code < 300 or code == 418


class Record(NamedTuple):
    """One request, as a live consumer sees it (wall-clock times in seconds)."""

    scheduled: float
    sent: float
    ended: float
    code: int  # HTTP status, -1 for a transport error
    error: str  # "" or one of ERROR_CLASSES (refused/reset/timeout/other/reset_reused/cancelled)
    version: str  # x-app-version of the response, "" if none
    flags: str  # x-envoy-flags of the response, "" if none
    worker: int
    connection: int  # serial number of the socket within the run, -1 if none was open
    size: int  # body bytes (fortio's Sizes histogram adds the header bytes: see results.py)

    @property
    def latency(self) -> float:
        """Seconds from the actual send to the end (what fortio reports)."""
        return self.ended - self.sent

    @property
    def corrected_latency(self) -> float:
        """Seconds from the *scheduled* send to the end (wrk2's coordinated-omission correction)."""
        return self.ended - self.scheduled


def _intern(names: list[str], index: dict[str, int], value: str) -> int:
    """``value``'s number in ``names`` (appended the first time it is seen)."""
    number = index.get(value)
    if number is None:
        number = index[value] = len(names)
        names.append(value)
    return number


class RequestLog:
    """Append-only columns of request data; ``len(log)`` is the number of requests."""

    __slots__ = (
        "code",
        "conn",
        "end",
        "err",
        "flag",
        "flag_index",
        "flag_names",
        "hsize",
        "sched",
        "send",
        "size",
        "ver",
        "version_index",
        "version_names",
        "wall0",
        "worker",
    )

    def __init__(self, wall0: float) -> None:
        self.wall0 = wall0
        self.sched = array("d")
        self.send = array("d")
        self.end = array("d")
        self.code = array("h")
        self.err = array("B")
        self.ver = array("H")
        self.flag = array("H")
        self.worker = array("H")
        self.conn = array("i")
        self.size = array("I")
        self.hsize = array("I")
        self.version_names: list[str] = [""]
        self.version_index: dict[str, int] = {"": 0}
        self.flag_names: list[str] = [""]
        self.flag_index: dict[str, int] = {"": 0}

    def __len__(self) -> int:
        return len(self.end)

    def intern_version(self, value: str) -> int:
        """The small int stored in ``ver`` for an x-app-version value."""
        return _intern(self.version_names, self.version_index, value)

    def intern_flags(self, value: str) -> int:
        """The small int stored in ``flag`` for an x-envoy-flags value."""
        return _intern(self.flag_names, self.flag_index, value)

    def append(
        self,
        sched: float,
        send: float,
        end: float,
        code: int,
        err: int,
        ver: int,
        flag: int,
        worker: int,
        conn: int,
        size: int,
        hsize: int,
    ) -> None:
        self.sched.append(sched)
        self.send.append(send)
        self.code.append(code)
        self.err.append(err)
        self.ver.append(ver)
        self.flag.append(flag)
        self.worker.append(worker)
        self.conn.append(conn)
        self.size.append(size)
        self.hsize.append(hsize)
        self.end.append(end)  # last: len(self) counts only complete rows

    def record(self, i: int) -> Record:
        wall0 = self.wall0
        err = self.err[i]
        return Record(
            scheduled=wall0 + self.sched[i],
            sent=wall0 + self.send[i],
            ended=wall0 + self.end[i],
            code=self.code[i],
            error=ERROR_NAMES[err],
            version=self.version_names[self.ver[i]],
            flags=self.flag_names[self.flag[i]],
            worker=self.worker[i],
            connection=self.conn[i],
            size=self.size[i],
        )

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop):
            yield self.record(i)

    def nbytes(self) -> int:
        """Memory held by the columns (for the record: about 40 bytes a request)."""
        columns: tuple[array[Any], ...] = (self.sched, self.send, self.end, self.code, self.err)
        columns += (self.ver, self.flag, self.worker, self.conn, self.size, self.hsize)
        return sum(col.itemsize * len(col) for col in columns)
