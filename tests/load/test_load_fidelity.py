"""Issue 11.8: what the generator records where fortio would hide or drop something.

In-flight requests at stop/cancel are ``cancelled``; a dead reused keep-alive socket is
``reset_reused`` (or retried once with ``fortio_retry``, as fortio's fast client does); the JSON
has every field of fortio's ``HTTPRunnerResults``; ``nocatchup`` does not claim a
coordinated-omission correction it cannot make.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from load_helpers import connections_to, other_tasks, wait_until
from target_server import TargetServer

from lab_app.load import LoadResults, LoadRun, start_load
from lab_app.load.results import histogram_data

REFERENCE = Path(__file__).parent / "data" / "fortio-1.75.2-http-result.json"

# Go fields of integer type (int, int64, time.Duration): JSON integers. Every other number is a
# Go float64, which encoding/json writes without a fraction when it is whole, so either is fine.
GO_INT_KEYS = {
    "ActualDuration", "NumThreads", "Exactly", "RunID", "NumConnections", "HTTPReqTimeOut",
    "Offset", "SocketCount", "AbortOn", "Count", "Sockets[]", "ConnReuseRange[]", "RetCodes{}",
    "IPCountMap{}",
}  # fmt: skip


async def start_in_flight(
    srv: TargetServer, in_flight: int, path: str, **params: Any
) -> tuple[LoadRun, int]:
    """Start a run at max rate on ``srv``; return it once ``in_flight`` of its requests reached the
    server, with the server's request count from before the run."""
    before = await asyncio.to_thread(srv.count)
    run = start_load(srv.url(path), qps=0, **params)

    async def sent() -> bool:
        return await asyncio.to_thread(srv.count) - before >= in_flight

    await wait_until(sent, 5, f"{in_flight} request(s) in flight at the server")
    return run, before


# ---------------------------------------------------------------- 1. cancelled, never dropped
async def test_stop_records_requests_in_flight_as_cancelled(server):
    run, _ = await start_in_flight(server, 3, "/slow/3000", c=3, duration=20, timeout=10)
    assert run.requests == 0  # none answered: all three are in flight
    stop_at = time.perf_counter() - run.perf0
    run.stop()
    results = await run
    assert results.done and results.stopped_early  # same meanings as before
    assert results.requests == 3
    assert results.codes == {-1: 3}
    assert results.errors["cancelled"] == 3 and results.non_2xx == 3
    log = results.records
    ends = {log.end[i] for i in range(3)}
    assert len(ends) == 1  # one moment of cancellation for all
    assert abs(ends.pop() - stop_at) < 0.1
    assert all(0 <= log.end[i] - log.send[i] < 2.0 for i in range(3))
    assert "cancelled 3" in results.summary()
    assert "counted as cancelled" in results.summary()
    assert results.to_fortio_json()["RetCodes"] == {"-1": 3}
    assert other_tasks() == set()
    assert connections_to(server.port) == []


async def test_cancel_keeps_requests_in_flight_too(server):
    run, _ = await start_in_flight(server, 2, "/slow/3000", c=2, duration=20, timeout=10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    results = run.results
    assert not results.done and results.stopped_early
    assert results.errors["cancelled"] == 2 and results.codes == {-1: 2}
    assert other_tasks() == set()


async def test_stop_with_drain_lets_requests_in_flight_finish(server):
    """``stop(drain=True)``: nothing new is sent, the requests in flight end with their answer;
    a run started "until stopped" ends as planned, so it is not ``stopped_early``."""
    run, before = await start_in_flight(server, 2, "/slow/500", c=2, duration=0, timeout=5)
    run.stop(drain=True)
    results = await run
    assert results.done and not results.stopped_early
    assert results.codes == {200: 2} and results.errors["cancelled"] == 0
    assert await asyncio.to_thread(server.count) - before == 2  # none sent after the stop
    assert other_tasks() == set()


async def test_stop_with_drain_cuts_what_outlives_the_timeout(server):
    run, _ = await start_in_flight(server, 1, "/slow/3000", c=1, duration=20, timeout=0.5)
    run.stop(drain=True)
    results = await run
    assert results.stopped_early  # a 20 s run stopped before its end
    assert results.codes == {-1: 1}
    assert results.errors["cancelled"] + results.errors["timeout"] == 1


# ---------------------------------------------------------------- 2. reset_reused
@pytest.mark.parametrize("engine", ["h11", "httpx"])
@pytest.mark.parametrize("path", ["/drop-reused", "/rst-reused"])
async def test_dead_reused_socket_is_reset_reused(server, engine, path):
    """Each connection serves one request; the next one on it dies unanswered."""
    results = await start_load(server.url(path), qps=0, c=1, n=6, engine=engine)
    assert results.codes == {200: 3, -1: 3}
    assert results.errors["reset_reused"] == 3
    assert results.errors["reset"] == 0
    assert results.socket_count == 3 and results.retried_reused == 0
    text = results.summary()
    assert "reset_reused 3" in text and "fortio would have retried" in text
    assert results.to_fortio_json()["zdlab"]["errors"]["reset_reused"] == 3


async def test_a_fresh_socket_dying_is_still_plain_reset(make_server):
    srv = make_server()
    run, _ = await start_in_flight(srv, 2, "/slow/3000", c=2, n=2, timeout=5)  # fresh sockets
    await asyncio.to_thread(srv.kill)
    results = await run
    assert results.errors["reset"] == 2 and results.errors["reset_reused"] == 0


# ---------------------------------------------------------------- 3. fortio's retry-once
@pytest.mark.parametrize("engine", ["h11", "httpx"])
async def test_fortio_retry_hides_them_and_counts_them(server, engine):
    results = await start_load(
        server.url("/drop-reused"), qps=0, c=1, n=6, engine=engine, fortio_retry=True
    )
    # request 1 opens a socket; 2..6 each find it dead, are retried on a new one and succeed
    assert results.codes == {200: 6}
    assert results.retried_reused == 5
    assert results.errors["reset_reused"] == 0
    assert results.socket_count == 6
    doc = results.to_fortio_json()
    assert doc["zdlab"]["retried_reused"] == 5 and doc["zdlab"]["fortio_retry"] is True
    assert "fortio retry mode: 5 request(s)" in results.summary()
    again = LoadResults.from_fortio_json(json.dumps(doc))
    assert again.retried_reused == 5 and again.fortio_retry


def test_cli_fortio_retry_flag(server):
    cmd = [sys.executable, "-m", "lab_app.cli", "load", server.url("/drop-reused"),
           "-qps", "0", "-n", "4", "-c", "1", "-fortio-retry", "-json", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["RetCodes"] == {"200": 4} and doc["zdlab"]["retried_reused"] == 3
    assert "fortio retry mode: 3 request(s)" in proc.stderr


# ---------------------------------------------------------------- 4. fortio JSON parity
def _shape(value: Any, key: str, path: str, problems: list[str], ref: Any) -> None:
    """Compare ``value`` with the reference ``ref``: same keys recursively, same JSON types."""
    if isinstance(ref, dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: {type(value).__name__}, fortio has an object")
            return
        if key in ("RetCodes", "IPCountMap"):  # maps: the keys are data, the values typed
            for k, v in value.items():
                _shape(v, key + "{}", f"{path}.{k}", problems, next(iter(ref.values())))
            return
        if set(value) != set(ref):
            missing, extra = sorted(set(ref) - set(value)), sorted(set(value) - set(ref))
            problems.append(f"{path}: missing {missing}, not in fortio {extra}")
        for k in set(value) & set(ref):
            _shape(value[k], k, f"{path}.{k}", problems, ref[k])
    elif isinstance(ref, list):
        if not isinstance(value, list):
            problems.append(f"{path}: {type(value).__name__}, fortio has a list")
        elif ref:
            for i, item in enumerate(value):
                _shape(item, key + "[]", f"{path}[{i}]", problems, ref[0])
    elif ref is None:
        if value is not None:
            problems.append(f"{path}: {value!r}, fortio has null")
    elif isinstance(ref, bool | str):
        if type(value) is not type(ref):
            problems.append(f"{path}: {type(value).__name__}, fortio has {type(ref).__name__}")
    elif key in GO_INT_KEYS:
        if type(value) is not int:
            problems.append(f"{path}: {value!r} is not an integer (a Go int in fortio)")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{path}: {value!r} is not a number")


async def test_json_has_fortios_fields_and_types(server):
    reference = json.loads(REFERENCE.read_text())
    results = await start_load(server.url("/ok"), qps=40, c=2, duration=1, label="ok run")
    doc = json.loads(json.dumps(results.to_fortio_json()))
    assert list(doc)[-1] == "zdlab"
    ours = {k: v for k, v in doc.items() if k != "zdlab"}
    assert list(ours) == list(reference)  # fortio's field order too
    problems: list[str] = []
    _shape(ours, "", "$", problems, reference)
    assert problems == []
    assert doc["RequestedQPS"] == "40" and doc["RequestedDuration"] == "1s"
    assert doc["ID"].endswith("_ok_run") and doc["HTTPReqTimeOut"] == 3_000_000_000
    assert doc["IPCountMap"] == {f"127.0.0.1:{server.port}": 2}
    assert doc["ConnectionStats"]["Count"] == 2 and doc["SocketCount"] == 2
    assert "Percentiles" in doc["ConnectionStats"] and "Percentiles" not in doc["Sizes"]
    # round trip still exact, and a genuine fortio document (no zdlab extras) reads
    again = LoadResults.from_fortio_json(json.dumps(doc))
    assert json.loads(json.dumps(again.to_fortio_json())) == doc
    plain = LoadResults.from_fortio_json(REFERENCE)
    assert plain.requests == 40 and plain.codes == {200: 40} and plain.socket_count == 2
    assert plain.timeout == 3.0 and plain.ip_count_map == {"127.0.0.1:8080": 2}
    assert plain.to_fortio_json()["ConnectionStats"] == reference["ConnectionStats"]


@pytest.mark.parametrize("engine", ["h11", "httpx"])
async def test_header_sizes_include_the_status_line_and_sizes_the_headers(server, engine):
    results = await start_load(server.url("/ok"), qps=0, c=1, n=3, engine=engine)
    head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-app-version: v1\r\nx-envoy-flags: -\r\n\r\n"
    assert results.header_sizes["Min"] == results.header_sizes["Max"] == len(head)
    assert results.sizes["Min"] == results.sizes["Max"] == len(head) + len("ok")


def test_histogram_dividers_follow_fortio():
    # Sizes: 100-byte buckets ]0,100], ]100,200], ...; the first starts at Min, the last ends at Max
    sizes = histogram_data([50, 100, 150, 250], 100)
    assert [(b["Start"], b["End"], b["Count"]) for b in sizes["Data"]] == [
        (50, 100, 2), (100, 200, 1), (200, 250, 1),
    ]  # fmt: skip
    assert "Percentiles" not in sizes
    # HeaderSizes: 5-byte buckets; exactly 5 is in ]0, 5] (left-open intervals)
    heads = histogram_data([5, 6], 5)
    assert [(b["End"], b["Count"]) for b in heads["Data"]] == [(5, 1), (6, 1)]
    empty = histogram_data([], 0.001, [50.0])
    assert empty == {"Count": 0, "Min": 0, "Max": 0, "Sum": 0, "Avg": 0, "StdDev": 0,
                     "Data": None}  # fmt: skip


@pytest.mark.parametrize(
    ("qps", "duration", "exactly", "requests", "want_qps", "want_duration"),
    [
        (12.5, 5.0, 0, 62, "12.5", "5s"),
        (1 / 3, 90.0, 0, 30, "0.333333333", "1m30s"),
        (8.0, 0.0, 0, 10, "8", "until stop"),
        (0.0, 0.0, 0, 10, "max", ""),
        (0.0, 0.5, 0, 10, "max", "500ms"),
        (0.0, 0.0, 10, 10, "max", "exactly 10 calls"),
        (20.0, 0.0, 10, 4, "20", "exactly 10 calls, interrupted after 4"),
    ],
)
def test_requested_qps_and_duration_strings(
    qps, duration, exactly, requests, want_qps, want_duration
):
    results = LoadResults(url="http://x/", requested_qps=qps, requested_duration=duration,
                          exactly=exactly, requests=requests, label="a b--c!")  # fmt: skip
    doc = results.to_fortio_json()
    assert (doc["RequestedQPS"], doc["RequestedDuration"]) == (want_qps, want_duration)
    assert doc["ID"].endswith("_a_b_c")


# ---------------------------------------------------------------- 5. nocatchup and CO
async def test_nocatchup_measures_from_the_slot_used_and_says_it_is_not_corrected(server):
    """A 100 ms server, a 50 ms schedule: half the slots are skipped, none is sent late."""
    url = server.url("/slow/100")
    catchup, skip = await asyncio.gather(
        start_load(url, qps=20, c=1, duration=1),
        start_load(url, qps=20, c=1, duration=1, nocatchup=True),
    )
    assert skip.requests + skip.skipped_slots == 20  # every slot sent or counted as skipped
    assert skip.skipped_slots >= 6
    log = skip.records
    # measured from the slot actually used: never more than one period behind its send
    assert all(log.send[i] - log.sched[i] < 0.05 + 0.02 for i in range(len(log)))
    assert skip.percentile_ms(99, corrected=True) < 250
    text = skip.summary()
    assert "NOT corrected for coordinated omission" in text
    assert f"nocatchup skipped {skip.skipped_slots} scheduled send(s)" in text
    assert "corrected for coordinated omission (from scheduled send)" not in text
    assert skip.to_fortio_json()["zdlab"]["skipped_slots"] == skip.skipped_slots
    # with catch-up the same line is a real correction and nothing is skipped
    assert catchup.skipped_slots == 0
    assert "corrected for coordinated omission (from scheduled send)" in catchup.summary()
    assert catchup.percentile_ms(99, corrected=True) > 500
