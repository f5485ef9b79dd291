"""fortio's text report for a run, followed by the lab's extra lines (marked ``# zdlab``).

The lines fortio prints (starting line, ``Ended after``, the histograms with their percentile
targets, ``Sockets used``, ``Code 200 : ...``, ``All done``) keep fortio's wording and number
formats, so a learner can set the lab's report beside a fortio run. What fortio does not say
(error classes, retried or skipped requests, responding versions, the latency corrected for
coordinated omission, the client's own loop lag and CPU) follows as ``# zdlab:`` comments.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from lab_app.load.options import format_duration

if TYPE_CHECKING:
    from lab_app.load.results import LoadResults


def starting_line(results: LoadResults) -> str:
    """fortio's first line: the rate, the threads and the calls the schedule plans."""
    qps = "max" if results.requested_qps <= 0 else f"{results.requested_qps:g}"
    gomax = os.cpu_count() or 1
    head = f"Starting at {qps} qps with {results.num_threads} thread(s) [gomax {gomax}]"
    if results.exactly:
        each, extra = divmod(results.exactly, results.num_threads)
        return f"{head} for exactly {results.exactly} calls ({each} per thread + {extra})"
    if results.requested_duration <= 0:
        return f"{head} until interrupted"
    dur = format_duration(results.requested_duration)
    if results.requested_qps > 0:
        # The schedule: worker w sends at offset_w + i * period while that is < duration.
        period = results.num_threads / results.requested_qps
        counts = [
            max(0, math.ceil((results.requested_duration - offset) / period - 1e-9))
            for offset in (
                period * w / results.num_threads if results.uniform else 0.0
                for w in range(results.num_threads)
            )
        ]
        return f"{head} for {dur} : {counts[0]} calls each (total {sum(counts)})"
    return f"{head} for {dur}"


def summary(results: LoadResults) -> str:
    """fortio's text report, then the lab's extra lines (marked ``# zdlab``)."""
    lines = [starting_line(results)]
    lines.append(
        f"Ended after {results.actual_duration:.6g}s : {results.requests} calls. "
        f"qps={results.actual_qps:.5g}"
    )
    if results.stopped_early:
        lines.append("# zdlab: the run was stopped before its end; these are partial results")
    lines.extend(histogram_lines(results.duration_histogram, "Aggregated Function Time"))
    lines.extend(histogram_lines(results.errors_duration_histogram, "Error cases"))
    lines.append(
        f"Sockets used: {results.socket_count} "
        f"(for perfect keepalive, would be {results.num_threads})"
    )
    total = results.requests or 1
    for code, n in sorted(results.codes.items()):
        lines.append(f"Code {code:3d} : {n} ({100.0 * n / total:.1f} %)")
    if any(results.errors.values()):
        parts = ", ".join(f"{k} {v}" for k, v in results.errors.items())
        lines.append(f"# zdlab: code -1 by class: {parts}")
    reset_reused = results.errors.get("reset_reused", 0)
    if results.fortio_retry:
        lines.append(
            f"# zdlab: fortio retry mode: {results.retried_reused} request(s) whose reused "
            "keep-alive socket died before the response were retried once on a new socket "
            "(errors fortio hides)"
        )
    elif reset_reused:
        lines.append(
            f"# zdlab: {reset_reused} reset_reused: a reused keep-alive socket died before "
            "the response; fortio would have retried each once and hidden it if the retry "
            "succeeded"
        )
    if results.errors.get("cancelled", 0):
        lines.append(
            f"# zdlab: {results.errors['cancelled']} request(s) in flight when the run was "
            "stopped are counted as cancelled (code -1)"
        )
    if results.by_version:
        parts = ", ".join(
            f"{k} {v} ({100.0 * v / total:.1f} %)" for k, v in results.by_version.items()
        )
        lines.append(f"# zdlab: responding version: {parts}")
    if results.by_flags:
        parts = ", ".join(f"{k} {v}" for k, v in results.by_flags.items())
        lines.append(f"# zdlab: envoy response flags: {parts}")
    if results.nocatchup:
        # Skipped slots were never sent, so no latency stands for them: measuring from the
        # slot actually used is honest but it is not a coordinated-omission correction.
        lines.append(
            f"# zdlab: nocatchup skipped {results.skipped_slots} scheduled send(s); latency "
            "below is from the scheduled slot actually used, NOT corrected for coordinated "
            "omission"
        )
        label = "from the scheduled slot used"
    else:
        label = "corrected for coordinated omission (from scheduled send)"
    for item in results.corrected_percentiles:
        lines.append(f"# zdlab: {label}: target {item['Percentile']:g}% {item['Value']:.6g}")
    if results.loop_lag:
        lines.append(
            f"# zdlab: client event-loop lag: max {results.loop_lag.get('max_ms', 0):.1f} ms, "
            f"p99 {results.loop_lag.get('p99_ms', 0):.1f} ms (engine {results.engine})"
        )
    if results.client_cpu_s and results.requests:
        lines.append(
            f"# zdlab: client process CPU {results.client_cpu_s:.3f} s "
            f"({1000 * results.client_cpu_s / results.requests:.3f} ms per request)"
        )
    avg_ms = 1000 * results.duration_histogram.get("Avg", 0.0)
    lines.append(
        f"All done {results.requests} calls (plus 0 warmup) {avg_ms:.3f} ms avg, "
        f"{results.actual_qps:.1f} qps"
    )
    return "\n".join(lines)


def histogram_lines(hist: dict[str, Any], title: str) -> list[str]:
    """One fortio histogram block: the counters, a line per bucket, then the percentile targets."""
    if not hist or not hist.get("Count"):
        return [f"{title} : no data"]
    lines = [
        f"{title} : count {hist['Count']} avg {hist['Avg']:.8g} +/- {hist['StdDev']:.4g} "
        f"min {hist['Min']:g} max {hist['Max']:g} sum {hist['Sum']:.9g}",
        "# range, mid point, percentile, count",
    ]
    for i, b in enumerate(hist.get("Data") or []):
        sep = ">=" if i == 0 else ">"
        lines.append(
            f"{sep} {b['Start']:.6g} <= {b['End']:.6g} , {(b['Start'] + b['End']) / 2:.6g} , "
            f"{b['Percent']:.2f}, {b['Count']}"
        )
    for p in hist.get("Percentiles") or []:
        lines.append(f"# target {p['Percentile']:g}% {p['Value']:.6g}")
    return lines
