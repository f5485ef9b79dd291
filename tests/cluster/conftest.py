"""Fixtures for tests/cluster: kubeconfig files pointing at a closed loopback port or at a
canned-JSON API server (tests/kube/kube_apiserver.py), and the environment of a subprocess
that must find no cluster."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kube"))

from kube_apiserver import FakeApiServer, kubeconfig_text

from tests import helpers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on: bound, never listened on, then released."""
    return helpers.closed_port()


@pytest.fixture
def write_kubeconfig(tmp_path: Path) -> Callable[..., Path]:
    def write(server: str, context: str = "kind-zdlab") -> Path:
        path = tmp_path / f"kubeconfig-{context}"
        path.write_text(kubeconfig_text(server, context=context))
        return path

    return write


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.on("GET", "/version/", {"major": "1", "minor": "34", "gitVersion": "v1.34.0"})
    yield server
    server.close()


@pytest.fixture
def isolated_env(tmp_path: Path) -> Callable[[Path | None], dict[str, str]]:
    """The environment for a subprocess: this KUBECONFIG (or none at all), a HOME without
    ~/.kube, not in a pod, and none of the variables that change the check's verdict."""

    def env(kubeconfig: Path | None) -> dict[str, str]:
        values = dict(os.environ)
        for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "ZDLAB_E2E_ANY_CONTEXT"):
            values.pop(name, None)
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        values["HOME"] = str(home)
        values["KUBECONFIG"] = str(kubeconfig if kubeconfig else tmp_path / "no-such-kubeconfig")
        return values

    return env
