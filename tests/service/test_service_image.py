"""Static checks of the image recipe (no Docker engine here): Dockerfile, .dockerignore, compose."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """Parse a Dockerfile into stages of ``(INSTRUCTION, arguments)``, joining ``\\`` lines
    and dropping comments (enough for the plain syntax this project uses)."""
    stages: list[list[tuple[str, str]]] = [[]]  # stage 0: ARGs before the first FROM
    logical = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, arguments = logical.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, arguments.strip()))
        logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    return dockerfile_stages(REPO_ROOT / "Dockerfile")


def values(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [arguments for name, arguments in stage if name == instruction]


def test_multi_stage_on_slim_python_312(stages: list[list[tuple[str, str]]]) -> None:
    preamble, *built = stages
    assert len(built) >= 2, "a build stage and a runtime stage"
    assert "PYTHON_IMAGE=python:3.12-slim" in values(preamble, "ARG")
    for stage in built:
        assert values(stage, "FROM")[0].startswith("${PYTHON_IMAGE} AS ")
    runtime = built[-1]
    assert any(v.startswith("--from=build ") for v in values(runtime, "COPY"))


def test_runtime_stage_runs_the_service_as_non_root(stages: list[list[tuple[str, str]]]) -> None:
    runtime = stages[-1]
    users = values(runtime, "USER")
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 10001, "numeric, non-root (Kubernetes runAsNonRoot)"
    entrypoint = json.loads(values(runtime, "ENTRYPOINT")[-1])  # exec form is a JSON array
    assert entrypoint == [
        "python",
        "-m",
        "lab_app.service",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert values(runtime, "EXPOSE") == ["8080"]
    assert not values(runtime, "CMD"), "arguments belong in the exec-form ENTRYPOINT"


def test_version_build_arg_reaches_env_and_build_info(stages: list[list[tuple[str, str]]]) -> None:
    build, runtime = stages[-2], stages[-1]
    for stage in (build, runtime):
        assert "VERSION=v1" in values(stage, "ARG")
    env = " ".join(values(runtime, "ENV"))
    assert re.search(r"\bAPP_VERSION=\$\{VERSION\}", env)
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)
    assert any("write_build_info" in run for run in values(build, "RUN"))
    labels = " ".join(values(runtime, "LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_build_context_keeps_what_the_dockerfile_copies(
    stages: list[list[tuple[str, str]]],
) -> None:
    """A .dockerignore that drops a copied file breaks the build; check it the way Docker
    does (last matching pattern wins, ``!`` re-includes)."""
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        result = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
                result = not negated
        return result

    copied = []
    for stage in stages:
        for arguments in values(stage, "COPY"):
            if arguments.startswith("--from="):
                continue
            copied += arguments.split()[:-1]
    assert copied, "the Dockerfile copies sources"
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"the Dockerfile copies {source}, which is missing"
        assert not ignored(source), f".dockerignore drops {source}, which the Dockerfile copies"
    assert not ignored("lab_app/service/app.py")
    assert ignored("lab_app/service/build_info.json"), "a developer's build info stays out"
    assert ignored(".venv") and ignored("notebooks")


def test_compose_runs_v1_on_loopback_with_faults_on() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    demo = compose["services"]["demo"]
    assert demo["build"]["args"]["VERSION"] == "v1"
    assert demo["image"] == "zdlab/demo:v1"
    assert demo["ports"] == ["127.0.0.1:8080:8080"]
    assert demo["environment"]["ENABLE_FAULT_ENDPOINTS"] == "true"
    assert demo["environment"]["APP_VERSION"] == "v1"
    assert demo["read_only"] is True
    assert demo["user"].split(":")[0] == "10001"
