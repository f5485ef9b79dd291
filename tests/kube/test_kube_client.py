"""Connecting: kubeconfig problems and an unreachable API give one clear line, fast, and
never the kubeconfig's credentials."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import pytest
from kube_apiserver import FakeApiServer, Reply, kubeconfig_text

from lab_app.cluster.kube import KubeCluster
from lab_app.cluster.kube.client import ContextInfo, load_configuration, redact
from lab_app.errors import ConfigError, LabError

SECRET = "SECRET-TOKEN"


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def test_unreachable_api_is_a_quick_clear_error_without_the_token(tmp_path: Path):
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text("https://127.0.0.1:1", token=SECRET))
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        await KubeCluster.start(kubeconfig=config, connect_timeout=2)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in message
    assert "'kind-zdlab'" in message
    assert "connection refused" in message
    assert "scripts/cluster-up.sh" in message
    assert SECRET not in full_text(info.value)
    assert info.value.__suppress_context__


async def test_rejected_credentials(tmp_path: Path, fake_api: FakeApiServer):
    fake_api.on("GET", "/version/", Reply(401, {"kind": "Status", "message": "Unauthorized"}))
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text(fake_api.url, token=SECRET))
    with pytest.raises(LabError, match="rejected the kubeconfig credentials") as info:
        await KubeCluster.start(kubeconfig=config)
    assert SECRET not in full_text(info.value)
    # the token was sent (so the server could reject it), as a bearer header
    assert fake_api.find("GET", "/version/")[0].headers["authorization"] == f"Bearer {SECRET}"


def test_missing_kubeconfig_names_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nope" / "config"
    with pytest.raises(LabError, match=f"no kubeconfig at {missing}"):
        load_configuration(missing)


def test_unknown_context_lists_the_contexts(tmp_path: Path):
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text("https://127.0.0.1:1", token=SECRET))
    with pytest.raises(LabError) as info:
        load_configuration(config, "kind-other")
    assert "context 'kind-other' is not in kubeconfig" in str(info.value)
    assert "contexts: kind-zdlab" in str(info.value)
    assert SECRET not in full_text(info.value)


def test_a_file_that_is_not_a_kubeconfig(tmp_path: Path):
    config = tmp_path / "kubeconfig"
    config.write_text(f"- just a list\n- token: {SECRET}\n")
    with pytest.raises(LabError) as info:
        load_configuration(config)
    assert str(config) in str(info.value)
    assert SECRET not in full_text(info.value)


def test_kubeconfig_env_is_used(tmp_path: Path, monkeypatch):
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text("https://127.0.0.1:1", context="minikube"))
    monkeypatch.setenv("KUBECONFIG", str(config))
    configuration, info = load_configuration()
    assert configuration.host == "https://127.0.0.1:1"
    assert (info.name, info.flavour, info.cluster) == ("minikube", "minikube", "minikube")


def test_context_flavours():
    assert ContextInfo.from_context("kind-zdlab", {}, "").cluster == "zdlab"
    assert ContextInfo.from_context("kind-zdlab", {}, "").flavour == "kind"
    custom = {"extensions": [{"name": "x", "extension": {"provider": "minikube.sigs.k8s.io"}}]}
    assert ContextInfo.from_context("lab", custom, "").flavour == "minikube"
    assert ContextInfo.from_context("gke_x", {}, "").flavour == "other"


def test_redact():
    text = "Authorization: Bearer abc.def.ghi failed; token=xyz password: hunter2 key SECRET-TOKEN"
    clean = redact(text, [SECRET])
    for secret in ("abc.def.ghi", "xyz", "hunter2", SECRET):
        assert secret not in clean


async def test_unknown_start_option_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown option"):
        await KubeCluster.start(workdir="/tmp")
