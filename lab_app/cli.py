"""The ``zdlab`` command: one entry point, a subcommand per part of the lab.

Each subcommand lives with the code it drives (``lab_app/<part>/cli.py`` exposing
``register(subparsers)``), so this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lab_app.errors import LabError

# subcommand -> module that provides register(subparsers)
SUBCOMMANDS = {
    "serve": "lab_app.service.cli",
    "load": "lab_app.load.cli",
    "experiment": "lab_app.experiments.cli",
    "cluster": "lab_app.cluster.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zdlab", description="zdlab: the zero-downtime rollout lab (Kubernetes + Istio)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a part not built yet, or an extra not installed
            if exc.name and exc.name.startswith("lab_app"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LabError as exc:
        print(f"zdlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
