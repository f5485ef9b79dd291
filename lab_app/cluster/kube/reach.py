"""Is there a cluster the lab can run its notebooks on? One line, within seconds.

``make test-cluster`` runs this first: ``python -m lab_app.cluster.kube.reach``. It exits 0
and prints one ``cluster ok: ...`` line when the kubeconfig's context answers and Istio's
ingress gateway is installed; otherwise it exits 1 with one line naming the context (or
``no kubeconfig``) and the reason: no kubeconfig, context not found, API server not
answering within the timeout, credentials rejected, no ``istio-system`` namespace, no
``istio-ingressgateway`` Service, or a context that is not a local kind/minikube cluster
(the notebooks create and delete things; ``ZDLAB_E2E_ANY_CONTEXT=1`` allows any cluster).
Every request has a short timeout and no retries; the whole check stays within
``2 * timeout``. Messages name files, contexts and server URLs, never credentials.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.kube.client import (
    _reason,
    _secrets_of,
    load_configuration,
    raw_response,
    redact,
)
from lab_app.cluster.kube.gateway import GATEWAY_NAMESPACE, GATEWAY_SERVICE
from lab_app.errors import LabError

NO_KUBECONFIG = "no kubeconfig"
ANY_CONTEXT_ENV = "ZDLAB_E2E_ANY_CONTEXT"
SETUP = "start one with scripts/cluster-up.sh (docs/real-cluster.md)"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    context: str  # the kubeconfig context, or NO_KUBECONFIG
    detail: str

    def line(self) -> str:
        if self.ok:
            return f"cluster ok: context {self.context}: {self.detail}"
        return f"no usable cluster (context: {self.context}): {self.detail}"


def kubeconfig_paths(kubeconfig: str | None = None) -> str:
    """What the kubernetes client reads: ``kubeconfig``, else $KUBECONFIG, else ~/.kube/config."""
    if kubeconfig:
        return str(Path(kubeconfig).expanduser())
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def kubeconfig_contexts(files: list[str]) -> tuple[str | None, set[str]]:
    """(current-context, context names) of kubeconfig files, merged the way kubectl does:
    the first file that sets current-context wins. ``LabError`` if a file is not readable."""
    current: str | None = None
    names: set[str] = set()
    for path in files:
        try:
            doc = yaml.safe_load(Path(path).expanduser().read_text()) or {}
        except OSError as exc:
            raise LabError(f"kubeconfig {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError:
            raise LabError(f"kubeconfig {path} is not valid YAML") from None
        if not isinstance(doc, dict):
            raise LabError(f"kubeconfig {path} is not a kubeconfig (not a YAML mapping)")
        current = current or (str(doc.get("current-context") or "") or None)
        names |= {str(c.get("name")) for c in doc.get("contexts") or [] if isinstance(c, dict)}
    return current, names


def check(
    kubeconfig: str | None = None,
    context: str | None = None,
    timeout: float = 3.0,
    any_context: bool | None = None,
) -> Verdict:
    """Find out, within about ``2 * timeout`` seconds, whether the notebooks can run."""
    paths = kubeconfig_paths(kubeconfig)
    files = [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    in_cluster = not kubeconfig and "KUBERNETES_SERVICE_HOST" in os.environ
    if not files and not in_cluster:
        where = f"KUBECONFIG={paths}" if os.environ.get("KUBECONFIG") and not kubeconfig else paths
        return Verdict(False, NO_KUBECONFIG, f"no kubeconfig file at {where}; {SETUP}")
    try:
        current, names = kubeconfig_contexts(files)
    except LabError as exc:
        return Verdict(False, context or "unknown", str(exc))
    name = context or current or ("in-cluster" if not files else "none")
    if files and name != "none" and name not in names:
        which = "the requested context" if context else "current-context"
        known = ", ".join(sorted(names)) or "none"
        return Verdict(
            False, name, f"{which} {name!r} is not in kubeconfig {paths} (contexts: {known})"
        )
    try:
        configuration, info = load_configuration(kubeconfig, context)
    except LabError as exc:
        return Verdict(False, name, str(exc))
    except Exception as exc:  # the kubernetes client's own errors: still one line
        return Verdict(False, name, f"kubeconfig {paths} cannot be loaded: {type(exc).__name__}")
    if any_context is None:
        any_context = bool(os.environ.get(ANY_CONTEXT_ENV))
    if info.flavour not in ("kind", "minikube") and not any_context:
        return Verdict(
            False,
            info.name,
            f"{info.server} is not a local kind or minikube cluster and the notebooks create "
            f"and delete things in namespace zdlab; set {ANY_CONTEXT_ENV}=1 to use it anyway",
        )
    return _probe(configuration, info.name, info.server, timeout)


def _probe(configuration: k8s.Configuration, name: str, server: str, timeout: float) -> Verdict:
    probe_config = copy.deepcopy(configuration)
    probe_config.retries = False
    # one line: a kubeconfig with insecure-skip-tls-verify (kind's is not) would add a warning
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    secrets = _secrets_of(configuration)
    deadline = time.monotonic() + 2 * timeout

    def budget() -> float:
        return max(0.2, min(timeout, deadline - time.monotonic()))

    with k8s.ApiClient(probe_config) as api_client:
        core = k8s.CoreV1Api(api_client)
        step = f"GET /version from the API server at {server}"
        try:
            raw = raw_response(
                k8s.VersionApi(api_client).get_code(
                    _request_timeout=budget(), _preload_content=False
                )
            )
            version = str(json.loads(raw.data or b"{}").get("gitVersion", "?"))
            step = f"namespace {GATEWAY_NAMESPACE}"
            core.read_namespace(GATEWAY_NAMESPACE, _request_timeout=budget())
            step = f"Service {GATEWAY_NAMESPACE}/{GATEWAY_SERVICE}"
            core.read_namespaced_service(
                GATEWAY_SERVICE, GATEWAY_NAMESPACE, _request_timeout=budget()
            )
        except ApiException as exc:
            return Verdict(False, name, _api_reason(exc, step, server, secrets))
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            return Verdict(
                False,
                name,
                f"API server unreachable at {server} within {timeout:g} s "
                f"({_reason(exc)}); {SETUP}",
            )
    return Verdict(
        True,
        name,
        f"Kubernetes {version} at {server}, Istio ingress gateway "
        f"{GATEWAY_NAMESPACE}/{GATEWAY_SERVICE} present",
    )


def _api_reason(exc: ApiException, step: str, server: str, secrets: list[str]) -> str:
    if exc.status in (401, 403):
        return (
            f"the API server at {server} refused {step} (HTTP {exc.status}): refresh the "
            "credentials (kind: kind export kubeconfig --name zdlab) or use an admin context"
        )
    if exc.status == 404 and step.startswith("namespace"):
        return (
            f"Istio is not installed: no namespace {GATEWAY_NAMESPACE} on {server}; "
            "run scripts/cluster-up.sh (docs/real-cluster.md)"
        )
    if exc.status == 404 and step.startswith("Service"):
        return (
            f"Istio's ingress gateway is not installed: no {step} on {server}; "
            "run scripts/cluster-up.sh (docs/real-cluster.md)"
        )
    reason = redact(str(exc.reason or ""), secrets)
    return f"{step} failed: HTTP {exc.status} {reason} (is {server} a Kubernetes API server?)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--context", help="context (default: the current one)")
    parser.add_argument("--timeout", type=float, default=3.0, help="per request, seconds")
    args = parser.parse_args(argv)
    verdict = check(args.kubeconfig, args.context, args.timeout)
    print(verdict.line(), file=sys.stdout if verdict.ok else sys.stderr, flush=True)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
