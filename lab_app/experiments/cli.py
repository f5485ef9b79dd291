"""``zdlab experiment NAME``: run one of the lab's experiments from a terminal.

Prints fortio's report for each load run, the experiment's steps and a one-line verdict, and
writes the whole ``ExperimentResult`` as JSON with ``--json``. The first Ctrl-C stops the
experiment early: the partial results are still printed and written, and every process is
stopped; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from typing import Any

from lab_app.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    from lab_app.experiments import EXPERIMENTS

    names = ", ".join(EXPERIMENTS)
    parser = subparsers.add_parser(
        "experiment",
        help="run a rollout experiment under load and report what the clients saw",
        description=f"Run an experiment on the embedded backend (or ZDLAB_BACKEND): {names}. "
        "Prints a fortio-style report per load run and the verdict.",
    )
    parser.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment")
    parser.add_argument("--qps", type=float, default=None, help="queries per second on /k8s/demo")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of load (subset-cutover: split over the baseline and the weight steps)",
    )
    parser.add_argument("--step-seconds", type=float, default=None, help="subset-cutover: step")
    parser.add_argument(
        "--via", choices=("service", "gateway"), default=None, help="naive-rolling-update: path"
    )
    parser.add_argument("--retries", action="store_true", help="sidecar-rolling-update: retries")
    parser.add_argument(
        "--max-retries", type=int, default=None, help="sidecar-rolling-update: DR maxRetries"
    )
    parser.add_argument(
        "--sidecar-mode",
        choices=("native", "classic"),
        default=None,
        help="sidecar-rolling-update: the pods' sidecar.istio.io/nativeSidecar annotation "
        "(default: none, the versions decide)",
    )
    parser.add_argument(
        "--drain-setting",
        default=None,
        metavar="exit-on-zero|drain-duration=SECONDS",
        help="sidecar-rolling-update: the pods' proxy.istio.io/config (classic sidecars' drain)",
    )
    parser.add_argument(
        "--istio", default=None, help="embedded: the Istio release imitated (default 1.28)"
    )
    parser.add_argument(
        "--kubernetes",
        default=None,
        help="embedded: the Kubernetes release imitated (default 1.34)",
    )
    parser.add_argument("--longtask-qps", type=float, default=None, help="load on /k8s/longTask")
    parser.add_argument("--longtask-seconds", type=float, default=None, help="length of a task")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the result as JSON")
    parser.add_argument(
        "--backend", default=None, help="embedded (default) or kubernetes (ZDLAB_BACKEND)"
    )
    parser.set_defaults(func=_main)


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    name = args.name
    kw: dict[str, Any] = {}
    if args.qps is not None:
        kw["qps"] = args.qps
    if name == "subset-cutover":
        if args.step_seconds is not None:
            kw["step_seconds"] = args.step_seconds
        elif args.duration is not None:
            kw["step_seconds"] = max(1.0, args.duration / 4)
    else:
        if args.step_seconds is not None:
            raise ConfigError("--step-seconds is for subset-cutover; use --duration")
        if args.duration is not None:
            kw["duration"] = args.duration
    if args.via is not None:
        if name != "naive-rolling-update":
            raise ConfigError("--via is for naive-rolling-update")
        kw["via"] = args.via
    if args.retries or args.max_retries is not None:
        if name != "sidecar-rolling-update":
            raise ConfigError("--retries/--max-retries are for sidecar-rolling-update")
        kw["retries"] = args.retries
        kw["max_retries"] = args.max_retries
    for flag in ("sidecar_mode", "drain_setting"):
        value = getattr(args, flag)
        if value is not None:
            if name != "sidecar-rolling-update":
                raise ConfigError(f"--{flag.replace('_', '-')} is for sidecar-rolling-update")
            kw[flag] = value
    if args.drain_setting is not None:
        from lab_app.experiments.rolling import parse_drain_setting

        parse_drain_setting(args.drain_setting)  # a bad value fails before anything starts
    for flag in ("longtask_qps", "longtask_seconds"):
        value = getattr(args, flag)
        if value is not None:
            if name not in ("sidecar-rolling-update", "subset-cutover"):
                raise ConfigError(f"--{flag.replace('_', '-')} is for the Istio experiments")
            kw[flag] = value
    return kw


def _main(args: argparse.Namespace) -> int:
    from lab_app.experiments import EXPERIMENTS

    kwargs = _kwargs(args)
    if args.json:
        _check_writable(args.json)
    fn = EXPERIMENTS[args.name]

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        presses = 0

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                print("\nzdlab: stopping (partial results follow; Ctrl-C again to abort)",
                      file=sys.stderr)  # fmt: skip
                stop.set()
            elif task is not None:
                task.cancel()

        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGINT, on_sigint)
        options = _cluster_options(args)
        cluster = None
        if "backend" in options:
            from lab_app.cluster import connect

            cluster = await connect(**options)
        elif options:  # the versions: with the experiment's own options (sidecar injection...)
            kwargs["cluster_options"] = options
        try:
            return await fn(cluster, stop=stop, **kwargs)
        finally:
            if cluster is not None:
                await cluster.close()

    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:  # the second Ctrl-C: the cluster was closed, no report
        print("zdlab: aborted", file=sys.stderr)
        return 130
    print(result.summary())
    if args.json:
        path = result.save_json(args.json)
        print(f"zdlab: result written to {path}", file=sys.stderr)
    return 130 if result.interrupted else 0


def _cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--backend``, ``--istio``, ``--kubernetes`` as ``connect()`` options (checked now)."""
    options: dict[str, Any] = {}
    if args.backend:
        options["backend"] = args.backend
    for flag in ("istio", "kubernetes"):
        value = getattr(args, flag, None)
        if value is not None:
            options[flag] = value
    if "istio" in options or "kubernetes" in options:
        from lab_app.cluster.versions import profile

        profile(options.get("istio"), options.get("kubernetes"))
    return options


def _check_writable(path_text: str) -> None:
    from pathlib import Path

    path = Path(path_text)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"--json {path_text}: directory {parent} does not exist")
