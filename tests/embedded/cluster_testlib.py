"""Helpers for the embedded cluster's tests (a module name of its own: test directories
share one import namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import psutil

from tests.helpers import ISTIO, alive, eventually, manifest  # noqa: F401 (re-exported)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
APP = "zero-downtime-rollingupdate"


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def descendants() -> list[psutil.Process]:
    """This test process's live children (the lab's processes are its children)."""
    return [
        p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE
    ]
