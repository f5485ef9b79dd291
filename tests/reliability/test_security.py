"""The lab exposes nothing: loopback-only listeners, hardened manifests, no secret in the repo,
JupyterLab on localhost with its token.

Covered elsewhere (not repeated here): every listener of a running embedded lab, admin
ports included, is on 127.0.0.1 (tests/embedded/test_cluster_cleanup.py); fault endpoints
answer 403 unless enabled (tests/service/test_service_app.py); every workload passes Pod
Security "restricted" (tests/manifests/test_repo_manifests.py); the kubernetes backend never
shows kubeconfig credentials (tests/kube/test_kube_client.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from reliability_testlib import ROOT, eventually

from lab_app.manifests import load_manifests
from lab_app.manifests.pod_security_standards import WORKLOAD_KINDS

# --------------------------------------------------------------------------- zdlab serve


async def test_zdlab_serve_listens_on_loopback_by_default() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab_app.cli", "serve", "--port", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def sockets() -> list[Any]:
            return psutil.Process(proc.pid).net_connections(kind="inet")

        await eventually(
            lambda: [c for c in sockets() if c.status == psutil.CONN_LISTEN], 20,
            message="zdlab serve listening",
        )  # fmt: skip
        bound = {c.laddr.ip for c in sockets()}
        assert bound == {"127.0.0.1"}, bound
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


# --------------------------------------------------------------------------- manifests


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    spec = obj["spec"]["template"]["spec"]
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            yield f"spec.template.spec.{key}[{i}]", c, spec.get("securityContext") or {}


def test_every_container_is_non_root_read_only_and_without_capabilities() -> None:
    """Beyond Pod Security "restricted" (checked elsewhere): readOnlyRootFilesystem too, for
    every workload, the naive one included (security is not what it lacks)."""
    workloads = [m for m in load_manifests(ROOT / "manifests") if m["kind"] in WORKLOAD_KINDS]
    assert len(workloads) >= 5
    for obj in workloads:
        for where, c, pod_sc in _containers(obj):
            sc = c.get("securityContext") or {}
            name = f"{obj['metadata']['name']} {where}"
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), name
            assert not (sc.get("capabilities") or {}).get("add"), name
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, name
            assert sc.get("privileged") is not True, name


# --------------------------------------------------------------------------- secrets

# Built from pieces so that this file does not match itself.
_DASHES = "-" * 5
SECRET_PATTERNS = {
    "private key": re.compile(_DASHES + r"BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY" + _DASHES),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "password with a literal value": re.compile(
        r"(?i)\b(?:password|passwd|client_secret|secret_access_key)\b[\"']?\s*[:=]\s*"
        r"[\"']?(?![\"'\s]|\$|\{|<|\*|None\b|null\b|\w+\()([^\s\"',;)]{4,})"
    ),
}
# (file, matched value): deliberate fakes, each with its reason
ALLOWED = {
    ("tests/kube/test_kube_client.py", "hunter2"): "fake value the redaction test must remove",
}
SKIP_DIRS = {".git", ".venv", "out", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}


def _repo_files() -> list[Path]:
    """What is (or will be) committed: ``git ls-files`` tracked + untracked-not-ignored."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        run = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        )  # fmt: skip
        return [ROOT / p for p in run.stdout.decode().split("\0") if p]
    out = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        out.extend(Path(folder) / f for f in files)
    return out


def find_secrets(text: str) -> list[tuple[str, str]]:
    """(kind, matched value) of every secret-looking string in ``text``."""
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for m in pattern.finditer(text):
            found.append((kind, m.group(m.lastindex or 0)))
    return found


def test_the_secret_patterns_catch_what_they_should() -> None:
    key = _DASHES + "BEGIN OPENSSH PRIVATE KEY" + _DASHES
    samples = {
        key: "private key",
        _DASHES + "BEGIN RSA PRIVATE KEY" + _DASHES: "private key",
        "token = gh" + "p_" + "a1B2" * 9: "GitHub token",
        "id: AK" + "IA" + "ABCDEFGHIJKLMNOP": "AWS access key id",
        "pass" + 'word: "s3cr3t!"': "password with a literal value",
        "PASS" + "WORD=letmein": "password with a literal value",
    }
    for text, kind in samples.items():
        assert kind in [k for k, _ in find_secrets(text)], text
    for harmless in (
        "pass" + "word: ${DB_PASSWORD}",
        "pass" + "word: <your password>",
        "pass" + "word = None",
        "pass" + 'word: ""',
        "for attr in ('pass" + "word', 'username'):",
        "image: zdlab/demo:v1@sha256:" + "ab12" * 16,
    ):
        assert find_secrets(harmless) == [], harmless


def test_no_secret_or_credential_in_the_repository() -> None:
    files = _repo_files()
    assert len(files) > 50
    problems = []
    allowed_seen = set()
    for path in files:
        try:
            if not path.is_file() or path.stat().st_size > 2_000_000:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue  # binary (images)
        rel = path.relative_to(ROOT).as_posix()
        for kind, value in find_secrets(data.decode("utf-8", "replace")):
            if (rel, value) in ALLOWED:
                allowed_seen.add((rel, value))
            else:
                problems.append(f"{rel}: {kind} ({value[:12]}...)")
    assert problems == [], "\n".join(problems)
    assert allowed_seen == set(ALLOWED), "an allowed fake is gone: drop it from ALLOWED"


# --------------------------------------------------------------------------- make jupyter


def _make_target(name: str) -> list[str]:
    """The recipe lines of a Makefile target (tab-indented lines after ``name:``)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{name}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_jupyter_binds_loopback_and_keeps_the_token() -> None:
    recipe = " ".join(_make_target("jupyter"))
    assert "jupyter lab" in recipe
    assert re.search(r"--(?:ServerApp\.)?ip[= ]127\.0\.0\.1\b", recipe), recipe
    for forbidden in (
        r"--(?:ServerApp|NotebookApp|IdentityProvider)\.token\s*=",
        r"--(?:ServerApp|NotebookApp|PasswordIdentityProvider)\.password\s*=",
        r"--ip[= ](?:0\.0\.0\.0|\*|::)",
        r"disable_check_xsrf",
        r"allow_origin\s*=\s*['\"]?\*",
    ):
        assert not re.search(forbidden, recipe), (forbidden, recipe)
