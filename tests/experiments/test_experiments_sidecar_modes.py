"""sidecar-rolling-update per sidecar mode: native sidecars cut no long task (issue 12.2)."""

from __future__ import annotations

import argparse

import pytest

from lab_app.errors import ConfigError
from lab_app.experiments import cli, run_sidecar_rolling_update
from lab_app.experiments.rolling import parse_drain_setting


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["experiment", *argv])


def test_cli_sidecar_flags_become_experiment_options() -> None:
    args = _args(
        "sidecar-rolling-update", "--sidecar-mode", "classic", "--drain-setting", "exit-on-zero"
    )
    assert cli._kwargs(args) == {"sidecar_mode": "classic", "drain_setting": "exit-on-zero"}
    args = _args("sidecar-rolling-update", "--istio", "1.26", "--kubernetes", "1.32")
    assert cli._cluster_options(args) == {"istio": "1.26", "kubernetes": "1.32"}
    with pytest.raises(ConfigError, match="--sidecar-mode is for sidecar-rolling-update"):
        cli._kwargs(_args("hardened-rolling-update", "--sidecar-mode", "native"))
    with pytest.raises(ConfigError, match=r"istio='1\.2'"):
        cli._cluster_options(_args("sidecar-rolling-update", "--istio", "1.2"))


def test_drain_settings_are_istio_proxy_config() -> None:
    assert parse_drain_setting("exit-on-zero") == {
        "proxyMetadata": {"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true"}
    }
    assert parse_drain_setting("drain-duration=15") == {"terminationDrainDuration": "15s"}
    for bad in ("drain-duration=", "drain-duration=-1", "forever"):
        with pytest.raises(ConfigError, match="exit-on-zero"):
            parse_drain_setting(bad)


async def test_native_sidecars_cut_no_long_task() -> None:
    result = await run_sidecar_rolling_update(qps=50, duration=8, sidecar_mode="native")
    print(result.verdict(), result.extra)
    assert result.extra["sidecar_mode"] == "native"
    assert result.extra["long_tasks_cut"] == 0
    assert result.load("longTask").requests > 0 and result.load("longTask").non_2xx == 0
    assert result.non_2xx == 0
    assert result.extra["versions"]["istio"] == "1.28"
    assert result.to_dict()["params"]["pod_annotations"] == {
        "sidecar.istio.io/nativeSidecar": "true"
    }
