"""Command line of the demo service: ``zdlab serve`` and ``python -m lab_app.service``.

Both take ``--host`` (loopback by default: nothing is exposed unless asked) and ``--port``
(``0`` picks a free port, reported on the ``ready`` log line). Configuration comes from the
environment only (see ``config.py``). Exit status 2 means the service refused to start: an
invalid variable or a busy port, named in the message on stderr.

Imports of FastAPI/uvicorn are deferred to :func:`run`, so ``zdlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_USAGE = 2
ERROR_PREFIX = "zdlab-service: error:"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not in 0..65535")
    return port


def command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The argv that runs the service as a process of its own: what the embedded kubelet
    starts as a pod's container, and what the service's tests start."""
    return [sys.executable, "-m", "lab_app.service", "--host", host, "--port", str(port)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="port to listen on, 0 for any (default: 8080)"
    )


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``zdlab`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the demo service (configured by environment variables)",
        description="Run the zdlab demo service; configuration is read from the environment "
        "(APP_VERSION, SHUTDOWN_MODE, DRAIN_SECONDS, ...; see docs/architecture.md).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the configuration, then serve until shutdown; return the exit status."""
    from lab_app.service.config import ServiceConfigError, load_config

    try:
        config = load_config()
    except ServiceConfigError as exc:
        for problem in exc.problems:
            print(f"{ERROR_PREFIX} {problem}", file=sys.stderr)
        return EXIT_USAGE

    from lab_app.service.server import ServiceStartError, run_service

    try:
        return run_service(config, host=args.host, port=args.port)
    except ServiceStartError as exc:
        print(f"{ERROR_PREFIX} {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lab_app.service``."""
    parser = argparse.ArgumentParser(
        prog="python -m lab_app.service", description="Run the zdlab demo service."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
