"""Helpers for the embedded cluster's tests (a module name of its own: test directories
share one import namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import psutil

from tests.helpers import eventually, manifest  # noqa: F401 (re-exported to the tests)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def alive(pids: list[int] | set[int]) -> list[int]:
    """The pids that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def descendants() -> list[psutil.Process]:
    """This test process's live children (the lab's processes are its children)."""
    return [
        p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE
    ]
