"""Configuration, log format, command line and import boundary of the demo service."""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import pytest

from lab_app.service import cli
from lab_app.service.config import (
    VARIABLES,
    ServiceConfig,
    ServiceConfigError,
    load_config,
    read_build_info,
    write_build_info,
)
from lab_app.service.faults import RetryCycle
from lab_app.service.lifecycle import format_event, log_event

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO_ROOT / "lab_app" / "service"


@pytest.fixture
def no_build_info(tmp_path: Path) -> Path:
    return tmp_path / "build_info.json"  # does not exist


def test_defaults_match_the_architecture_table(no_build_info: Path) -> None:
    config = load_config({}, build_info_path=no_build_info)
    assert config == ServiceConfig(pod_name=config.pod_name)
    assert (config.app_version, config.image_id, config.shutdown_mode) == ("v1", "dev", "graceful")
    assert (config.drain_seconds, config.grace_seconds) == (0.0, 30.0)
    assert config.enable_fault_endpoints is False
    assert config.memory_limit_mb is None  # no self-kill: the container's limit stops the leak
    assert (config.fullgc_seconds, config.longtask_workers) == (2, 5)
    assert (config.fault_error_rate, config.fault_delay_ms, config.keepalive_seconds) == (0, 0, 5)
    assert config.pod_name  # the hostname


def test_every_variable_is_read(no_build_info: Path) -> None:
    env = {
        "APP_VERSION": "v2",
        "IMAGE_ID": "sha256:abc",
        "POD_NAME": "demo-7f9c-x2",
        "SHUTDOWN_MODE": "NAIVE",
        "DRAIN_SECONDS": "2.5",
        "GRACE_SECONDS": "10",
        "ENABLE_FAULT_ENDPOINTS": "True",
        "MEMORY_LIMIT_MB": "128",
        "FULLGC_SECONDS": "0.5",
        "LONGTASK_WORKERS": "3",
        "FAULT_ERROR_RATE": "0.25",
        "FAULT_DELAY_MS": "150",
        "KEEPALIVE_SECONDS": "75",
    }
    assert set(env) == set(VARIABLES)
    config = load_config(env, build_info_path=no_build_info)
    assert config == ServiceConfig(
        app_version="v2",
        image_id="sha256:abc",
        pod_name="demo-7f9c-x2",
        shutdown_mode="naive",
        drain_seconds=2.5,
        grace_seconds=10.0,
        enable_fault_endpoints=True,
        memory_limit_mb=128,
        fullgc_seconds=0.5,
        longtask_workers=3,
        fault_error_rate=0.25,
        fault_delay_ms=150.0,
        keepalive_seconds=75.0,
    )


def test_variables_are_the_ones_in_docs_architecture() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.MULTILINE)
    assert tuple(documented) == VARIABLES


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHUTDOWN_MODE", "fast"),
        ("MEMORY_LIMIT_MB", "-1"),
        ("MEMORY_LIMIT_MB", "1.5"),
        ("ENABLE_FAULT_ENDPOINTS", "maybe"),
        ("DRAIN_SECONDS", "-0.1"),
        ("GRACE_SECONDS", "inf"),
        ("FULLGC_SECONDS", "61"),
        ("LONGTASK_WORKERS", "0"),
        ("FAULT_ERROR_RATE", "1.5"),
        ("FAULT_DELAY_MS", "nan"),
        ("KEEPALIVE_SECONDS", "0"),
        ("APP_VERSION", "v 1"),
        ("IMAGE_ID", "has space"),
        ("POD_NAME", "x" * 300),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(
    no_build_info: Path, variable: str, value: str
) -> None:
    with pytest.raises(ServiceConfigError) as caught:
        load_config({variable: value}, build_info_path=no_build_info)
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r} is not valid; accepted values: ")


def test_all_invalid_values_are_reported_at_once(no_build_info: Path) -> None:
    env = {"SHUTDOWN_MODE": "fast", "MEMORY_LIMIT_MB": "-1", "ENABLE_FAULT_ENDPOINTS": "maybe"}
    with pytest.raises(ServiceConfigError) as caught:
        load_config(env, build_info_path=no_build_info)
    assert [p.split("=")[0] for p in caught.value.problems] == [
        "SHUTDOWN_MODE",
        "ENABLE_FAULT_ENDPOINTS",
        "MEMORY_LIMIT_MB",
    ]
    assert "naive, graceful" in caught.value.problems[0]


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("on", True), ("FALSE", False), ("0", False)]
)
def test_boolean_spellings(no_build_info: Path, raw: str, expected: bool) -> None:
    config = load_config({"ENABLE_FAULT_ENDPOINTS": raw}, build_info_path=no_build_info)
    assert config.enable_fault_endpoints is expected


def test_an_empty_variable_counts_as_unset(no_build_info: Path) -> None:
    env = {"SHUTDOWN_MODE": "", "DRAIN_SECONDS": "  "}
    config = load_config(env, build_info_path=no_build_info)
    assert (config.shutdown_mode, config.drain_seconds) == ("graceful", 0.0)


def test_build_info_supplies_version_and_image_defaults(tmp_path: Path) -> None:
    path = write_build_info("v2", "zdlab/demo:v2", tmp_path / "build_info.json")
    assert read_build_info(path) == {"version": "v2", "image_id": "zdlab/demo:v2"}
    from_image = load_config({}, build_info_path=path)
    assert (from_image.app_version, from_image.image_id) == ("v2", "zdlab/demo:v2")
    overridden = load_config({"APP_VERSION": "v3"}, build_info_path=path)
    assert (overridden.app_version, overridden.image_id) == ("v3", "zdlab/demo:v2")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"version": 2}', "'version' must be a non-empty string"),
        ('{"version": "v 2"}', "APP_VERSION (from build_info.json)='v 2' is not valid"),
    ],
)
def test_a_broken_build_info_is_an_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "build_info.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ServiceConfigError, match=re.escape(problem)):
        load_config({}, build_info_path=path)


def test_write_build_info_refuses_bad_build_args(tmp_path: Path) -> None:
    with pytest.raises(ServiceConfigError, match="VERSION='v 1'"):
        write_build_info("v 1", "img", tmp_path / "build_info.json")
    assert not (tmp_path / "build_info.json").exists()


def test_lifecycle_lines_are_greppable(capsys: pytest.CaptureFixture[str]) -> None:
    log_event("sigterm", source="signal:SIGTERM", inflight=2, note="two words", pause=0.5)
    line = capsys.readouterr().err
    assert line == (
        'zdlab-service sigterm source=signal:SIGTERM inflight=2 note="two words" pause=0.500\n'
    )
    assert format_event("exit", code=0) == "zdlab-service exit code=0"
    with pytest.raises(ValueError, match="unknown lifecycle event"):
        log_event("exploded")


def test_retry_cycle_is_shared_and_ordered() -> None:
    cycle = RetryCycle()
    assert [cycle.next_status() for _ in range(4)] == [(1, 503), (2, 409), (3, 200), (4, 503)]


def test_serve_subcommand_registers_with_loopback_defaults() -> None:
    parser = argparse.ArgumentParser(prog="zdlab")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 8080, cli.run)
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "0"])
    assert (args.host, args.port) == ("0.0.0.0", 0)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_rejects_a_bad_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="zdlab")
    cli.register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["serve", "--port", port])
    assert caught.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_service_imports_only_stdlib_fastapi_and_uvicorn() -> None:
    """The package is copied into the image alone: no other lab module, no lab dependency."""
    allowed = set(sys.stdlib_module_names) | {"fastapi", "uvicorn", "starlette", "pydantic"}
    offenders = []
    for path in sorted(SERVICE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name == "lab_app.service" or name.startswith("lab_app.service."):
                    continue
                if name.split(".")[0] not in allowed:
                    offenders.append(f"{path.name}: {name}")
    assert not offenders
