"""The "is a cluster usable" check that ``make test-cluster`` runs first
(lab_app/cluster/kube/reach.py): without a cluster it must fail in seconds, in one line
naming the kube context and the reason. Offline: a closed loopback port, a missing
kubeconfig, and a canned-JSON API server for the Istio checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kube_apiserver import FakeApiServer, Reply

from lab_app.cluster.kube.reach import NO_KUBECONFIG, check
from lab_app.paths import REPO_ROOT as REPO

BOUND_S = 10.0


def run(args: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    elapsed = time.monotonic() - started
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, lines, elapsed


def reach(env: dict[str, str]) -> tuple[int, list[str], float]:
    return run([sys.executable, "-m", "lab_app.cluster.kube.reach"], env)


def test_closed_port_fails_in_one_line_within_the_bound(
    closed_port, write_kubeconfig, isolated_env
) -> None:
    server = f"https://127.0.0.1:{closed_port}"
    code, lines, elapsed = reach(isolated_env(write_kubeconfig(server)))
    assert code == 1
    assert elapsed < BOUND_S, elapsed
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("no usable cluster (context: kind-zdlab): API server unreachable at ")
    assert server in line and "connection refused" in line, line
    assert "SECRET-TOKEN" not in line


def test_missing_kubeconfig_is_named(isolated_env, tmp_path: Path) -> None:
    code, lines, elapsed = reach(isolated_env(None))
    assert code == 1 and elapsed < BOUND_S
    assert lines == [
        f"no usable cluster (context: {NO_KUBECONFIG}): no kubeconfig file at "
        f"KUBECONFIG={tmp_path / 'no-such-kubeconfig'}; start one with scripts/cluster-up.sh "
        "(docs/real-cluster.md)"
    ]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_cluster_fails_fast_without_a_cluster(
    closed_port, write_kubeconfig, isolated_env
) -> None:
    env = isolated_env(write_kubeconfig(f"https://127.0.0.1:{closed_port}"))
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "test-cluster"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "pip install" in dry.stdout:
        pytest.skip("the venv's install stamp is stale: make test-cluster would reinstall first")
    code, lines, elapsed = run(["make", "--no-print-directory", "test-cluster"], env)
    assert code != 0
    assert elapsed < BOUND_S, elapsed
    # our one line, then make's own "make: *** [Makefile:N: test-cluster] Error 1" ("make[1]:
    # ***" when this test itself runs under `make test`)
    ours = [line for line in lines if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert len(ours) == 1, lines
    assert ours[0].startswith("no usable cluster (context: kind-zdlab): API server unreachable")
    assert "pytest" not in "\n".join(lines)  # the notebooks never started


def test_context_not_in_kubeconfig(closed_port, write_kubeconfig) -> None:
    path = write_kubeconfig(f"https://127.0.0.1:{closed_port}")
    verdict = check(kubeconfig=str(path), context="kind-other")
    assert not verdict.ok and verdict.context == "kind-other"
    assert "'kind-other' is not in kubeconfig" in verdict.detail
    assert "contexts: kind-zdlab" in verdict.detail


def test_current_context_missing(tmp_path: Path, closed_port, write_kubeconfig) -> None:
    path = write_kubeconfig(f"https://127.0.0.1:{closed_port}")
    path.write_text(path.read_text().replace("current-context: kind-zdlab", "current-context: x"))
    verdict = check(kubeconfig=str(path))
    assert not verdict.ok and verdict.context == "x"
    assert verdict.detail.startswith("current-context 'x' is not in kubeconfig")


def test_invalid_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [\n")
    verdict = check(kubeconfig=str(path))
    assert not verdict.ok and verdict.detail == f"kubeconfig {path} is not valid YAML"


def test_a_remote_context_needs_consent(closed_port, write_kubeconfig) -> None:
    path = write_kubeconfig(f"https://127.0.0.1:{closed_port}", context="prod")
    verdict = check(kubeconfig=str(path), any_context=False)
    assert not verdict.ok and verdict.context == "prod"
    assert "not a local kind or minikube cluster" in verdict.detail
    assert "ZDLAB_E2E_ANY_CONTEXT=1" in verdict.detail


def test_no_istio_system_namespace(fake_api: FakeApiServer, write_kubeconfig) -> None:
    verdict = check(kubeconfig=str(write_kubeconfig(fake_api.url)), timeout=2)
    assert not verdict.ok
    assert verdict.line() == (
        "no usable cluster (context: kind-zdlab): Istio is not installed: no namespace "
        f"istio-system on {fake_api.url}; run scripts/cluster-up.sh (docs/real-cluster.md)"
    )


def test_no_ingress_gateway(fake_api: FakeApiServer, write_kubeconfig) -> None:
    fake_api.on("GET", "/api/v1/namespaces/istio-system", {"kind": "Namespace"})
    verdict = check(kubeconfig=str(write_kubeconfig(fake_api.url)), timeout=2)
    assert not verdict.ok
    assert "no Service istio-system/istio-ingressgateway" in verdict.detail


def test_rejected_credentials(fake_api: FakeApiServer, write_kubeconfig) -> None:
    fake_api.on("GET", "/version/", Reply(401, {"kind": "Status", "code": 401}))
    verdict = check(kubeconfig=str(write_kubeconfig(fake_api.url)), timeout=2)
    assert not verdict.ok and "(HTTP 401)" in verdict.detail
    assert "SECRET-TOKEN" not in verdict.line()


def test_a_usable_cluster(fake_api: FakeApiServer, write_kubeconfig) -> None:
    fake_api.on("GET", "/api/v1/namespaces/istio-system", {"kind": "Namespace"})
    fake_api.on(
        "GET", "/api/v1/namespaces/istio-system/services/istio-ingressgateway", {"kind": "Service"}
    )
    verdict = check(kubeconfig=str(write_kubeconfig(fake_api.url)), timeout=2)
    assert verdict.ok, verdict.line()
    assert verdict.line() == (
        f"cluster ok: context kind-zdlab: Kubernetes v1.34.0 at {fake_api.url}, "
        "Istio ingress gateway istio-system/istio-ingressgateway present"
    )
