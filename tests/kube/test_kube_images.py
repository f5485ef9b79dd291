"""Image tool selection and the build/load commands (no image is built here: no engine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab_app.cluster.kube.client import ContextInfo
from lab_app.cluster.kube.images import (
    IMAGE_TOOLS,
    build_and_load,
    build_command,
    find_image_tool,
    image_ref,
    load_commands,
    main,
)
from lab_app.errors import ConfigError, LabError

KIND = ContextInfo("kind-zdlab", "", "kind", "zdlab")
MINIKUBE = ContextInfo("minikube", "", "minikube", "minikube")


def path_with(tmp_path: Path, *names: str) -> str:
    """A PATH of one directory holding executables with these names (never run)."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\nexit 99\n")
        tool.chmod(0o755)
    return str(directory)


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        (("docker", "podman", "nerdctl"), "docker"),
        (("podman", "nerdctl"), "podman"),
        (("nerdctl",), "nerdctl"),
    ],
)
def test_first_tool_found_wins(tmp_path, present, chosen):
    found = find_image_tool(path_with(tmp_path, *present))
    assert Path(found).name == chosen
    assert Path(found).parent == tmp_path / "bin"


def test_no_tool_names_what_was_searched(tmp_path):
    path = path_with(tmp_path, "kind")
    with pytest.raises(LabError) as info:
        find_image_tool(path)
    message = str(info.value)
    for name in IMAGE_TOOLS:
        assert name in message
    assert path in message


def test_a_non_executable_file_is_not_a_tool(tmp_path):
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "docker").write_text("not executable")
    with pytest.raises(LabError):
        find_image_tool(str(directory))


def test_build_command():
    root = Path("/src/zdlab")
    assert build_command("/usr/bin/docker", "v2", root) == [
        "/usr/bin/docker",
        "build",
        "-f",
        "/src/zdlab/Dockerfile",
        "--build-arg",
        "VERSION=v2",
        "-t",
        "zdlab/demo:v2",
        "/src/zdlab",
    ]


@pytest.mark.parametrize("version", ["", "v1 v2", "../x", "v1;rm", "-v1"])
def test_bad_versions_are_refused(version):
    with pytest.raises(ConfigError, match="not a valid tag"):
        image_ref(version)


def test_load_commands(tmp_path):
    archive = tmp_path / "demo.tar"
    assert load_commands("/usr/bin/docker", "zdlab/demo:v1", KIND, archive) == [
        ["kind", "load", "docker-image", "zdlab/demo:v1", "--name", "zdlab"]
    ]
    assert load_commands("/usr/bin/podman", "zdlab/demo:v1", KIND, archive) == [
        ["/usr/bin/podman", "save", "-o", str(archive), "zdlab/demo:v1"],
        ["kind", "load", "image-archive", str(archive), "--name", "zdlab"],
    ]
    assert load_commands("docker", "zdlab/demo:v3", MINIKUBE, archive) == [
        ["minikube", "image", "load", "zdlab/demo:v3", "-p", "minikube"]
    ]
    assert load_commands("docker", "zdlab/demo:v1", ContextInfo("gke", ""), archive) == []


def test_build_without_a_dockerfile(tmp_path):
    with pytest.raises(LabError, match="no Dockerfile at"):
        build_and_load("v1", KIND, repo_root=tmp_path, tool="docker", echo=lambda s: None)


def test_entry_point_reports_errors_with_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", path_with(tmp_path))
    monkeypatch.setattr("lab_app.cluster.kube.images.REPO_ROOT", tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert main(["v1", "--kind", "zdlab"]) == 2
    err = capsys.readouterr().err
    assert "no container image tool found" in err
    assert os.environ["PATH"] in err
