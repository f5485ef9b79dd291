"""The load generator against a real local HTTP server: counts, pacing, errors, cleanup."""

from __future__ import annotations

import asyncio
import time

import pytest
from load_helpers import connections_to, other_tasks, wait_until

from lab_app.load import ERROR_CLASSES, LoadRun, start_load


async def test_exact_n_sends_exactly_n_requests(server):
    before = server.count()
    results = await start_load(server.url(), qps=0, c=4, n=37)
    assert results.requests == 37
    assert results.codes == {200: 37}
    assert await asyncio.to_thread(server.count) - before == 37
    # fortio splits n over the workers: 10, 9, 9, 9
    per_worker = sorted(results.records.worker.tolist().count(w) for w in range(4))
    assert per_worker == [9, 9, 9, 10]


async def test_exact_n_with_a_rate_takes_n_over_qps(server):
    started = time.monotonic()
    results = await start_load(server.url(), qps=100, c=2, n=50)
    assert results.requests == 50
    assert 0.45 <= time.monotonic() - started <= 3.0
    assert results.actual_duration == pytest.approx(0.5, abs=0.1)


async def test_rate_is_held_within_one_percent(server):
    """200 qps for 5 s over 4 connections: 1,000 calls sent on schedule."""
    results = await start_load(server.url(), qps=200, c=4, duration=5, uniform=True)
    assert results.requests == 1000
    assert results.non_2xx == 0
    assert results.actual_qps == pytest.approx(200, rel=0.01)
    # The sends themselves (not only the schedule) are paced: count the requests actually sent
    # in the middle 3 seconds.
    log = results.records
    sent_mid = sum(1 for t in log.send if 1.0 <= t < 4.0)
    assert sent_mid == pytest.approx(600, rel=0.02)
    assert results.loop_lag["send_delay_ms"]["p50"] < 20
    # Per-second timeline: full seconds carry ~200 each.
    rows = results.timeline()
    assert [r["t"] for r in rows[:5]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(abs(r["requests"] - 200) <= 6 for r in rows[1:4])


async def test_uses_exactly_c_sockets_and_keeps_them_alive(server):
    run = start_load(server.url(), qps=100, c=3, duration=1.5)
    await wait_until(lambda: run.requests >= 30, 5, "30 requests")
    live = [c for c in connections_to(server.port) if c.status == "ESTABLISHED"]
    assert len(live) == 3
    results = await run
    assert results.socket_count == 3
    assert results.sockets == [1, 1, 1]
    assert len(set(results.records.conn)) == 3
    assert "Sockets used: 3 (for perfect keepalive, would be 3)" in results.summary()


async def test_connection_refused_is_counted_not_fatal(closed_port):
    results = await start_load(f"http://127.0.0.1:{closed_port}/", qps=50, c=2, duration=1)
    assert results.requests == 50
    assert results.codes == {-1: 50}
    assert results.errors["refused"] == 50
    assert results.non_2xx == 50
    assert results.socket_count == 0
    assert "Code  -1 : 50 (100.0 %)" in results.summary()


async def test_status_codes_versions_and_envoy_flags(make_server):
    srv = make_server("v2")
    results = await start_load(srv.url("/mix"), qps=0, c=2, n=40)
    assert results.codes == {200: 20, 503: 20}
    assert results.non_2xx == 20
    assert results.by_version == {"v2": 40}
    assert results.by_flags == {"UF": 20}
    assert results.errors == dict.fromkeys(ERROR_CLASSES, 0)


async def test_server_killed_mid_run_gives_reset_then_refused(make_server):
    srv = make_server()
    # Slow answers keep requests in flight, so the kill cuts some of them.
    run = start_load(srv.url("/slow/200"), qps=20, c=4, duration=2.5, timeout=2)
    await wait_until(lambda: run.requests >= 4, 5, "first answers")
    await asyncio.to_thread(srv.kill)
    results = await run
    assert results.codes[200] >= 4
    # cut mid-request: "reset", or "reset_reused" when no byte had come on a reused socket
    # (the kill lands while the server sleeps, so mostly the latter)
    assert results.errors["reset"] + results.errors["reset_reused"] >= 1
    assert results.errors["refused"] >= 1
    assert results.codes[-1] == sum(results.errors.values())
    assert connections_to(srv.port) == []


async def test_timeout_is_its_own_class_and_reopens_the_socket(server):
    results = await start_load(server.url("/slow/1000"), qps=4, c=1, n=2, timeout=0.2)
    assert results.errors["timeout"] == 2
    assert results.codes == {-1: 2}
    assert results.socket_count == 2  # the timed-out socket is not reused
    log = results.records
    assert all(0.19 <= log.end[i] - log.send[i] <= 0.6 for i in range(2))


async def test_connection_close_answers_reconnect_and_count_sockets(server):
    results = await start_load(server.url("/close"), qps=0, c=2, n=10)
    assert results.codes == {200: 10}
    assert results.socket_count == 10  # fortio's "more sockets than -c": the server closes each


async def test_catchup_and_nocatchup(server):
    """A 100 ms server and a 50 ms schedule: catch-up sends every slot late; nocatchup skips."""
    url = server.url("/slow/100")
    catchup, skip = await asyncio.gather(
        start_load(url, qps=20, c=1, duration=1),
        start_load(url, qps=20, c=1, duration=1, nocatchup=True),
    )
    assert catchup.requests == 20
    assert 8 <= skip.requests <= 12
    # Coordinated omission: the scheduled-send latency shows the backlog, the send latency not.
    assert catchup.percentile_ms(99, corrected=True) > 500
    assert catchup.p99_ms < 300


async def test_uniform_staggers_worker_start(server):
    results = await start_load(server.url(), qps=40, c=4, n=8, uniform=True)
    log = results.records
    first = {}
    for i in range(len(log)):
        first.setdefault(log.worker[i], log.sched[i])
    period = 4 / 40
    assert [round(first[w], 6) for w in range(4)] == [round(w * period / 4, 6) for w in range(4)]


async def test_jitter_moves_sends_off_the_grid(server):
    results = await start_load(server.url(), qps=100, c=1, n=20, jitter=True)
    period = 0.01
    offsets = [results.records.sched[i] - i * period for i in range(20)]
    assert any(abs(o) > 1e-4 for o in offsets)
    assert all(abs(o) <= 0.1 * period + 1e-9 for o in offsets)


async def test_stop_keeps_partial_results_and_leaves_nothing(server):
    run = start_load(server.url(), qps=100, c=4, duration=30)
    await wait_until(lambda: run.requests >= 20, 5, "20 requests")
    run.stop()
    results = await run
    assert run.done and results.done
    assert results.stopped_early
    assert 20 <= results.requests < 3000
    assert results.actual_duration < 10
    assert other_tasks() == set()
    assert connections_to(server.port) == []


async def test_cancel_leaves_no_task_and_no_socket(server):
    run = start_load(server.url(), qps=100, c=4, duration=30)
    await wait_until(lambda: run.requests >= 10, 5, "10 requests")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert run.done
    assert run.results.requests >= 10  # what was measured is still there
    assert other_tasks() == set()
    assert connections_to(server.port) == []


async def test_cancelling_the_awaiting_task_cancels_the_run(server):
    run = start_load(server.url(), qps=100, c=2, duration=30)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run, 0.5)
    assert run.done
    assert other_tasks() == set()
    assert connections_to(server.port) == []


async def test_several_runs_at_once_and_subscribe(make_server):
    a_srv, b_srv = make_server("v1"), make_server("v2")
    a = start_load(a_srv.url(), qps=100, c=2, duration=2, label="a")
    b = start_load(b_srv.url(), qps=50, c=2, duration=2, label="b")
    seen = 0
    batches = 0
    async for batch in a.subscribe(interval=0.5):
        batches += 1
        seen += len(batch)
        assert all(r.code == 200 and r.version == "v1" for r in batch)
        if batch.done:
            break
    ra, rb = await a, await b
    assert seen == ra.requests == 200
    assert batches >= 3
    assert rb.requests == 100 and rb.by_version == {"v2": 100}
    assert isinstance(a, LoadRun) and a.done and b.done


async def test_event_loop_lag_is_measured(server):
    run = start_load(server.url(), qps=50, c=2, duration=1.5)
    await wait_until(lambda: run.requests >= 10, 5, "10 requests")
    time.sleep(0.25)  # block the loop on purpose: the stall under test, not synchronisation
    results = await run
    assert results.loop_lag["max_ms"] >= 200
    assert any(row["max_ms"] >= 200 for row in results.loop_lag["per_second_max_ms"])
    assert "event-loop lag: max" in results.summary()
    # the stall shows in the corrected latency, not in the send-to-end latency
    assert results.percentile_ms(99.9, corrected=True) >= 150


async def test_as_fast_as_possible_and_compact_records(server):
    results = await start_load(server.url(), qps=0, c=4, duration=1)
    assert results.requests > 300
    assert results.codes == {200: results.requests}
    assert results.records.nbytes() / results.requests <= 48


async def test_snapshot_while_running(server):
    run = start_load(server.url(), qps=100, c=2, duration=1.5)
    await wait_until(lambda: run.requests >= 30, 5, "30 requests")
    snap = run.snapshot()
    assert not snap.done and 30 <= snap.requests < 150
    final = await run
    assert final.done and final.requests == 150
    assert run.results is final


async def test_idle_socket_closed_by_the_server_is_reopened_not_counted_as_error(server):
    """The server closes each socket after answering (no header): the next request notices the
    closed socket before sending and opens a new one; nothing was sent, so nothing is retried."""
    results = await start_load(server.url("/idle-close"), qps=20, c=1, n=5)
    assert results.codes == {200: 5}
    assert results.socket_count == 5


@pytest.mark.parametrize("engine", ["h11", "httpx"])
async def test_both_engines_agree_on_codes_sockets_and_errors(make_server, closed_port, engine):
    srv = make_server("v2")
    mixed = await start_load(srv.url("/mix"), qps=0, c=2, n=20, engine=engine)
    assert mixed.engine == engine
    assert mixed.codes == {200: 10, 503: 10}
    assert mixed.by_version == {"v2": 20} and mixed.by_flags == {"UF": 10}
    assert mixed.socket_count == 2
    refused = await start_load(f"http://127.0.0.1:{closed_port}/", n=4, c=2, engine=engine)
    assert refused.errors["refused"] == 4 and refused.codes == {-1: 4}
    slow = await start_load(srv.url("/slow/500"), n=1, c=1, timeout=0.1, engine=engine)
    assert slow.errors["timeout"] == 1
    run = start_load(srv.url("/slow/300"), qps=20, c=2, duration=1.5, timeout=2, engine=engine)
    await wait_until(lambda: run.requests >= 2, 5, "first answers")
    await asyncio.to_thread(srv.kill)
    killed = await run
    assert killed.errors["reset"] + killed.errors["reset_reused"] >= 1
    assert killed.errors["refused"] >= 1
    assert other_tasks() == set()
    assert connections_to(srv.port) == []
