"""``zdlab load``: fortio's ``load`` command line, on the lab's generator.

The flags keep fortio's single-dash spelling (``-qps 20 -c 4 -t 30s -json out.json``) so a
learner can paste a command from the original demo. One default differs from fortio: a dead
reused keep-alive socket is counted (``reset_reused``), not retried; ``-fortio-retry`` gives
fortio's retry-once. Ctrl-C stops the run and still prints the
partial report and writes the partial JSON; the exit status is then 130 (128 + SIGINT, as
``zdlab experiment`` and shells use), so a script can tell a partial run from a complete one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from typing import Any, cast

from lab_app.load.options import MAX_DURATION_S, LoadParams, make_options
from lab_app.load.records import is_success
from lab_app.load.runner import LoadRun, run_options

PROGRESS_EVERY_S = 5.0
#: make_options' parameters whose fortio flag has another name (-max-duration is max_duration)
_FLAG = {"duration": "t", "percentiles": "p", "headers": "H"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load",
        help="fortio-compatible HTTP load (fortio's flags: -qps -c -t -n -json ...)",
        description=(
            "Send HTTP GET load to URL at a fixed rate over keep-alive connections and print "
            "fortio's report (per-code counts, latency histogram and percentiles)."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("url", metavar="URL", help="target, e.g. http://127.0.0.1:8080/k8s/demo")
    parser.add_argument("-qps", default="8", help="total queries per second, 0 = max (default 8)")
    parser.add_argument("-c", default="4", help="connections / parallel workers (default 4)")
    parser.add_argument("-t", default="5s", help="duration, e.g. 30s, 1m; 0 = until Ctrl-C")
    parser.add_argument("-n", default="0", help="exact number of calls instead of a duration")
    parser.add_argument(
        "-json", default=None, help="write fortio's JSON result here ('-' = stdout)"
    )
    parser.add_argument("-uniform", action="store_true", help="stagger the workers' start evenly")
    parser.add_argument("-jitter", action="store_true", help="+/-10%% jitter on each send time")
    parser.add_argument(
        "-nocatchup", action="store_true", help="skip missed slots instead of catching up"
    )
    parser.add_argument("-timeout", default="3s", help="per-request timeout (default 3s)")
    parser.add_argument("-p", default="50,75,90,99,99.9", help="percentiles to report")
    parser.add_argument("-label", default="", help="label stored in the JSON (fortio's Labels)")
    parser.add_argument(
        "-H", action="append", default=[], metavar="'Name: value'", help="extra request header"
    )
    parser.add_argument(
        "-engine",
        default="auto",
        choices=("auto", "h11", "httpx"),
        help="client engine: h11 (fast, plain http), httpx (https too); auto picks",
    )
    parser.add_argument(
        "-fortio-retry",
        action="store_true",
        help=(
            "retry once, on a new socket, a request whose reused keep-alive socket died before "
            "the response, as fortio's fast client does (default: count every failure)"
        ),
    )
    parser.add_argument(
        "-max-duration",
        default=str(MAX_DURATION_S),
        help=f"safety cap for -t 0 / -n at max qps (default {MAX_DURATION_S:g}s)",
    )
    parser.set_defaults(func=_main)


def _headers(items: list[str]) -> dict[str, str]:
    from lab_app.errors import ConfigError

    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"-H: expected 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def _check_writable(path_text: str) -> None:
    """Fail before the run, not after it, when the JSON cannot be written."""
    import os
    from pathlib import Path

    from lab_app.errors import ConfigError

    path = Path(path_text)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"-json: {path_text!r} is a directory")
    if not parent.is_dir():
        raise ConfigError(f"-json: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"-json: directory {str(parent)!r} is not writable")


def _main(args: argparse.Namespace) -> int:
    # Every make_options parameter has its flag (fortio's name): they pass by name.
    params = {key: getattr(args, _FLAG.get(key, key)) for key in LoadParams.__annotations__}
    params["headers"] = _headers(args.H)
    options = make_options(args.url, **cast(LoadParams, params))
    json_to_stdout = args.json == "-"
    if args.json and not json_to_stdout:
        _check_writable(args.json)
    report = sys.stderr if json_to_stdout else sys.stdout

    async def progress(run: LoadRun) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - started
            n = run.requests
            failed = sum(1 for code in run.log.code[:n] if not is_success(code))
            print(
                f"zdlab load: {elapsed:.0f}s, {n} calls, {n / elapsed:.1f} qps, "
                f"{failed} non-2xx (incl. {run.log.code[:n].count(-1)} code -1)",
                file=sys.stderr,
                flush=True,
            )

    interrupted = False

    def on_sigint(run: LoadRun) -> None:
        nonlocal interrupted
        interrupted = True
        run.stop(drain=True)  # like fortio: the calls in flight finish

    def on_start(run: LoadRun) -> Any:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(signal.SIGINT, on_sigint, run)
        print(run.results.starting_line(), file=report, flush=True)
        return progress(run)

    # our own SIGINT handler (installed in on_start) stops the run and remembers the interrupt
    results = run_options(options, on_start=on_start, stop_on_sigint=False)
    if results.stopped_early:
        print("zdlab load: interrupted, partial results follow", file=sys.stderr)
    body = results.summary().split("\n", 1)[1]  # the starting line was printed at the start
    print(body, file=report, flush=True)
    if args.json:
        if json_to_stdout:
            json.dump(results.to_fortio_json(), sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            path = results.save_json(args.json)
            print(f"Successfully wrote {path.stat().st_size} bytes of Json data to {path}",
                  file=report)  # fmt: skip
    return 130 if interrupted else 0
