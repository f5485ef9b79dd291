"""Soak: the subset cutover back and forth under steady load, watching for leaks.

One embedded cluster with both Deployments (``deployment-v1.yaml``, ``deployment-v2.yaml``,
Istio sidecars injected), the DestinationRule, the Gateway and ``virtualservice-v1-v2.yaml``.
Load runs on ``/k8s/demo`` through the ingress gateway at ``--qps`` while ``set_weights``
moves the traffic every ``--step-seconds``: v1 100 -> 50/50 -> v2 100 -> 50/50 -> v1 100 ...

Reported at the end (and ``--json FILE``):

* requests, non-2xx and the codes (make before break: expected 0 non-2xx), weight changes;
* for every lab process (reaper, gateway, kube-proxy, pods, sidecars) and for this
  load-generating process: RSS and open file descriptors at the start of the load, after
  the warm-up (``--warmup`` s: first-use allocations are not leaks) and at the end; growth is
  end minus warm-up. A leak shows as steady growth; a line per minute shows the trend.

The load runs in back-to-back segments of ``--segment-seconds`` whose records are folded into
totals and dropped, so the generator's own request log does not pass for a leak.

It stops by itself after ``--minutes`` (or at the first Ctrl-C, with the partial report),
closes the cluster and checks that no process it started is left (exit status 1 if one is).

Usage: python bench/soak.py [--minutes 10] [--qps 200] [--step-seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.load import start_load

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"
WEIGHTS = ({"version-v1": 100, "version-v2": 0}, {"version-v1": 50, "version-v2": 50},
           {"version-v1": 0, "version-v2": 100}, {"version-v1": 50, "version-v2": 50})  # fmt: skip
FILES = (
    "namespace.yaml", "configmap.yaml", "service.yaml", "deployment-v1.yaml",
    "deployment-v2.yaml", "istio/destinationrule.yaml", "istio/gateway.yaml",
    "istio/virtualservice-v1-v2.yaml",
)  # fmt: skip
SELF = "load generator (this process)"


@dataclass
class Sample:
    """RSS (bytes) and open fds of each process, by name, at one moment."""

    t: float
    rss: dict[str, int] = field(default_factory=dict)
    fds: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)


def sample(cluster: EmbeddedCluster, t0: float) -> Sample:
    s = Sample(t=time.monotonic() - t0)
    procs = {**cluster.processes(), SELF: os.getpid()}
    for name, pid in procs.items():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            s.rss[name], s.fds[name], s.pids[name] = p.memory_info().rss, p.num_fds(), pid
    return s


@dataclass
class Totals:
    requests: int = 0
    non_2xx: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    segments: int = 0
    worst_p99_ms: float = 0.0

    def add(self, results: Any) -> None:
        self.requests += results.requests
        self.non_2xx += results.non_2xx
        self.codes.update(results.codes)
        self.versions.update(results.by_version)
        self.segments += 1
        if results.requests:
            self.worst_p99_ms = max(self.worst_p99_ms, results.p99_ms)


async def flip_weights(cluster: EmbeddedCluster, step: float, stop: asyncio.Event) -> int:
    """Move the weights around the WEIGHTS cycle every ``step`` seconds; returns the count."""
    changes = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), step)
        if stop.is_set():
            break
        changes += 1
        await cluster.set_weights(APP, WEIGHTS[changes % len(WEIGHTS)])
    return changes


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    cluster = await EmbeddedCluster.start()
    totals = Totals()
    samples: list[Sample] = []
    changes = 0
    try:
        await cluster.build_image("v1")
        await cluster.build_image("v2")
        for name in FILES:
            await cluster.apply(MANIFESTS / name)
        await cluster.wait_rollout(f"{APP}-v1", timeout=120)
        await cluster.wait_rollout(f"{APP}-v2", timeout=120)
        await cluster.set_weights(APP, WEIGHTS[0])
        await cluster.config_settled()
        url = cluster.gateway_url() + "/k8s/demo"
        conns = max(4, min(64, -(-int(args.qps) // 12)))
        print(f"soak: {args.minutes:g} min at {args.qps:g} qps ({conns} connections) on {url}, "
              f"weights change every {args.step_seconds:g}s", flush=True)  # fmt: skip
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        samples.append(sample(cluster, t0))
        flipper = asyncio.create_task(flip_weights(cluster, args.step_seconds, stop))
        warm_done = False
        next_report = t0 + 60
        while not stop.is_set() and time.monotonic() < end - 0.5:
            seconds = min(args.segment_seconds, end - time.monotonic())
            run = start_load(url, qps=args.qps, c=conns, duration=seconds, uniform=True,
                             label="soak")  # fmt: skip
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait({run.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not run.done:
                run.stop()
            totals.add(await run)
            del run
            now = time.monotonic()
            if not warm_done and now - t0 >= args.warmup:
                samples.append(sample(cluster, t0))
                warm_done = True
            if now >= next_report:
                s = sample(cluster, t0)
                lab_rss = sum(v for k, v in s.rss.items() if k != SELF)
                print(f"  {s.t / 60:5.1f} min: {totals.requests} requests, {totals.non_2xx} "
                      f"non-2xx, lab RSS {lab_rss / 2**20:.0f} MiB, load generator RSS "
                      f"{s.rss.get(SELF, 0) / 2**20:.0f} MiB", flush=True)  # fmt: skip
                next_report += 60
        samples.append(sample(cluster, t0))
        stop.set()
        changes = await flipper
        elapsed = time.monotonic() - t0
        restarts = {p.name: p.restarts for p in await cluster.pods() if p.restarts}
        crashes = [str(e) for e in cluster.events() if e.kind in ("ProxyCrashed", "OOMKilled")]
    finally:
        pids = set(cluster.processes().values())
        await cluster.close()
    leftover = await _leftover(pids)
    if not warm_done:
        samples.insert(1, samples[0])
    return _report(args, totals, samples, changes, elapsed, restarts, crashes, leftover)


async def _leftover(pids: set[int], timeout: float = 10.0) -> list[int]:
    """Pids of the lab (or any child of this process) still running after close()."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p.pid)
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and pid not in left:
                    left.append(pid)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)


def _report(
    args: argparse.Namespace,
    totals: Totals,
    samples: list[Sample],
    changes: int,
    elapsed: float,
    restarts: dict[str, int],
    crashes: list[str],
    leftover: list[int],
) -> dict[str, Any]:
    start, warm, end = samples[0], samples[1], samples[-1]
    rows = []
    for name in sorted(end.rss, key=lambda n: (n == SELF, n)):
        rows.append({
            "process": name,
            "pid": end.pids[name],
            "same_pid": start.pids.get(name) == end.pids[name],
            "rss_start_mib": round(start.rss.get(name, 0) / 2**20, 1),
            "rss_warm_mib": round(warm.rss.get(name, 0) / 2**20, 1),
            "rss_end_mib": round(end.rss[name] / 2**20, 1),
            "rss_growth_mib": round((end.rss[name] - warm.rss.get(name, 0)) / 2**20, 1),
            "fds_start": start.fds.get(name),
            "fds_warm": warm.fds.get(name),
            "fds_end": end.fds[name],
        })  # fmt: skip
    return {
        "minutes": round(elapsed / 60, 2),
        "qps_requested": args.qps,
        "qps_achieved": round(totals.requests / elapsed, 1) if elapsed else 0.0,
        "requests": totals.requests,
        "non_2xx": totals.non_2xx,
        "codes": {str(k): v for k, v in sorted(totals.codes.items())},
        "versions": dict(sorted(totals.versions.items())),
        "weight_changes": changes,
        "load_segments": totals.segments,
        "worst_segment_p99_ms": round(totals.worst_p99_ms, 2),
        "warmup_s": round(warm.t, 1),
        "restarts": restarts,
        "crashes": crashes,
        "processes": rows,
        "leftover_processes": leftover,
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"\nsoak: {r['minutes']} min, {r['requests']} requests ({r['qps_achieved']} qps of "
          f"{r['qps_requested']:g}), {r['non_2xx']} non-2xx, codes {r['codes']}, versions "
          f"{r['versions']}, {r['weight_changes']} weight changes, worst p99 of a "
          f"{r['load_segments']}-segment run {r['worst_segment_p99_ms']} ms")  # fmt: skip
    print(f"restarts: {r['restarts'] or 'none'}; crashes/OOM: {r['crashes'] or 'none'}")
    print(f"\nRSS MiB at load start / after {r['warmup_s']}s warm-up / end (growth = end - warm-up)"
          ", open fds the same")  # fmt: skip
    print(f"{'process':<58} {'start':>7} {'warm':>7} {'end':>7} {'growth':>7}   fds")
    for row in r["processes"]:
        name = row["process"] + ("" if row["same_pid"] else " (new pid)")
        print(f"{name:<58} {row['rss_start_mib']:>7} {row['rss_warm_mib']:>7} "
              f"{row['rss_end_mib']:>7} {row['rss_growth_mib']:>+7}   "
              f"{row['fds_start']}/{row['fds_warm']}/{row['fds_end']}")  # fmt: skip
    left = r["leftover_processes"]
    print(f"\nprocesses left running after close(): {len(left)}" + (f" {left}" if left else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--qps", type=float, default=200.0, help="load in requests/s (200)")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="between weight changes")
    parser.add_argument("--segment-seconds", type=float, default=30.0, help="load run length")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--json", default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60 or not 0 < args.qps <= 5000:
        parser.error("--minutes must be in (0, 1440] and --qps in (0, 5000]")
    if args.step_seconds < 1 or args.segment_seconds < 1 or args.warmup < 0:
        parser.error("--step-seconds and --segment-seconds must be >= 1, --warmup >= 0")
    report = asyncio.run(soak(args))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["leftover_processes"] else 0


if __name__ == "__main__":
    sys.exit(main())
