"""Build the demo image with a local container tool and load it into kind or minikube.

Local clusters cannot pull ``zdlab/demo:vN`` from a registry (it exists only here), so
the image is built from the repository's Dockerfile and copied into the cluster's node
(``kind load`` / ``minikube image load``); the manifests use ``imagePullPolicy:
IfNotPresent`` so the kubelet uses the loaded copy. Run as a program for the cluster
scripts: ``python -m lab_app.cluster.kube.images v1 v2 v3 [--context kind-zdlab]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab_app.cluster.kube.client import ContextInfo
from lab_app.errors import ConfigError, LabError
from lab_app.paths import REPO_ROOT

IMAGE_TOOLS = ("docker", "podman", "nerdctl")
IMAGE_REPOSITORY = "zdlab/demo"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

Echo = Callable[[str], None]


def find_image_tool(path: str | None = None) -> str:
    """The first of docker, podman, nerdctl on ``path`` (default ``$PATH``), as a full path."""
    for name in IMAGE_TOOLS:
        found = shutil.which(name, path=path)
        if found:
            return found
    searched = path if path is not None else os.environ.get("PATH", "")
    raise LabError(
        f"no container image tool found: looked for {', '.join(IMAGE_TOOLS)} on PATH "
        f"({searched}); install Docker (https://docs.docker.com/engine/install/) or Podman"
    )


def image_ref(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise ConfigError(f"image version {version!r} is not a valid tag (letters, digits, ._-)")
    return f"{IMAGE_REPOSITORY}:{version}"


def build_command(tool: str, version: str, repo_root: Path = REPO_ROOT) -> list[str]:
    """``TOOL build -f Dockerfile --build-arg VERSION=v2 -t zdlab/demo:v2 REPO``."""
    dockerfile = repo_root / "Dockerfile"
    return [
        tool,
        "build",
        "-f",
        str(dockerfile),
        "--build-arg",
        f"VERSION={version}",
        "-t",
        image_ref(version),
        str(repo_root),
    ]


def load_commands(tool: str, image: str, context: ContextInfo, archive: Path) -> list[list[str]]:
    """Commands that copy ``image`` into the cluster's node(s); [] when none is needed.

    kind reads Docker's image store directly (``kind load docker-image``); with podman or
    nerdctl the image goes through a tar archive (``kind load image-archive``).
    """
    tool_name = Path(tool).name
    if context.flavour == "kind":
        cluster = context.cluster or "zdlab"
        if tool_name == "docker":
            return [["kind", "load", "docker-image", image, "--name", cluster]]
        return [
            [tool, "save", "-o", str(archive), image],
            ["kind", "load", "image-archive", str(archive), "--name", cluster],
        ]
    if context.flavour == "minikube":
        profile = context.cluster or "minikube"
        if tool_name == "docker":
            return [["minikube", "image", "load", image, "-p", profile]]
        return [
            [tool, "save", "-o", str(archive), image],
            ["minikube", "image", "load", str(archive), "-p", profile],
        ]
    return []


def run_streaming(args: Sequence[str], echo: Echo = print, cwd: Path | None = None) -> None:
    """Run a build step, echoing its output line by line (a build takes a while)."""
    echo(f"$ {' '.join(args)}")
    try:
        process = subprocess.Popen(
            list(args),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not on PATH (needed for: {' '.join(args)})") from None
    tail: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            line = line.rstrip()
            echo(f"  {line}")
            tail = [*tail[-19:], line]
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "")
        raise LabError(f"{' '.join(args[:2])} ... failed with exit status {code}: {last.strip()}")


def build_and_load(
    version: str,
    context: ContextInfo | None,
    *,
    repo_root: Path | None = None,
    tool: str | None = None,
    echo: Echo = print,
) -> str:
    """Build ``zdlab/demo:<version>`` and load it into the context's cluster; the image ref."""
    image = image_ref(version)
    repo_root = repo_root or REPO_ROOT
    if not (repo_root / "Dockerfile").is_file():
        raise LabError(f"no Dockerfile at {repo_root / 'Dockerfile'} to build {image} from")
    tool = tool or find_image_tool()
    echo(f"building {image} with {Path(tool).name}")
    run_streaming(build_command(tool, version, repo_root), echo, cwd=repo_root)
    with tempfile.TemporaryDirectory(prefix="zdlab-image-") as tmp:
        archive = Path(tmp) / f"demo-{version}.tar"
        commands = load_commands(tool, image, context, archive) if context else []
        if commands and context is not None:
            echo(f"loading {image} into {context.flavour} cluster {context.cluster}")
        elif context is not None:
            echo(f"context {context.name!r} is neither kind nor minikube: push {image} yourself")
        for command in commands:
            run_streaming(command, echo)
    echo(f"{image} ready")
    return image


def build_with_options(version: str, context: ContextInfo, options: dict[str, Any]) -> str:
    """``KubeCluster.build_image``'s options checked, then ``build_and_load``: ``tool``
    (path of docker/podman/nerdctl), ``load`` (default True: into the context's cluster),
    ``repo_root``, ``echo`` (progress printer, default ``print``)."""
    allowed = {"tool", "load", "repo_root", "echo"}
    if set(options) - allowed:
        raise ConfigError(
            f"build_image() got unknown option(s) {', '.join(sorted(set(options) - allowed))}"
        )
    echo: Echo = options.get("echo") or (lambda s: print(s, flush=True))
    return build_and_load(
        version,
        context if options.get("load", True) else None,
        repo_root=Path(options["repo_root"]) if options.get("repo_root") else None,
        tool=options.get("tool"),
        echo=echo,
    )


def _context_from_kubeconfig(name: str | None) -> ContextInfo:
    from lab_app.cluster.kube.client import load_configuration

    return load_configuration(context=name)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab_app.cluster.kube.images",
        description="Build zdlab/demo:VERSION images and load them into a kind/minikube cluster",
    )
    parser.add_argument("versions", nargs="+", help="image versions, e.g. v1 v2 v3")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--kind", metavar="CLUSTER", help="load into this kind cluster")
    parser.add_argument("--minikube", metavar="PROFILE", help="load into this minikube profile")
    args = parser.parse_args(argv)
    try:
        if args.kind:
            context = ContextInfo(f"kind-{args.kind}", "", "kind", args.kind)
        elif args.minikube:
            context = ContextInfo(args.minikube, "", "minikube", args.minikube)
        else:
            context = _context_from_kubeconfig(args.context)
        for version in args.versions:
            build_and_load(version, context, echo=lambda s: print(s, flush=True))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
