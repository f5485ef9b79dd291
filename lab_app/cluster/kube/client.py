"""Connect to a cluster: load kubeconfig (or in-cluster config) and probe the API server.

A notebook that cannot reach its cluster should say so in one line within seconds, not
hang for minutes in urllib3 retries or print a traceback. Credentials never appear in
what this module raises: messages name the file, the context and the server address
only, and anything echoed from a library is scrubbed of the configuration's secrets.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from lab_app.errors import LabError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class ContextInfo:
    """Which cluster the kubeconfig context points at, as far as the lab cares."""

    name: str  # context name, "in-cluster" when running in a pod
    server: str  # API server URL (not a secret)
    flavour: str = "other"  # kind | minikube | in-cluster | other
    cluster: str = ""  # kind cluster name / minikube profile

    @classmethod
    def from_context(cls, name: str, context: dict[str, Any] | None, server: str) -> ContextInfo:
        """Recognise kind (``kind-NAME``) and minikube (context = profile name) contexts."""
        if name.startswith("kind-"):
            return cls(name, server, "kind", name.removeprefix("kind-"))
        extensions = (context or {}).get("extensions") or []
        providers = {
            str(((ext or {}).get("extension") or {}).get("provider", "")) for ext in extensions
        }
        if name == "minikube" or "minikube.sigs.k8s.io" in providers:
            return cls(name, server, "minikube", name)
        return cls(name, server, "other", "")


@dataclass
class KubeClients:
    """The typed API objects the backend uses, all sharing one ``ApiClient``."""

    api_client: k8s.ApiClient
    context: ContextInfo
    core: k8s.CoreV1Api = field(init=False)
    apps: k8s.AppsV1Api = field(init=False)
    autoscaling: k8s.AutoscalingV2Api = field(init=False)
    discovery: k8s.DiscoveryV1Api = field(init=False)
    custom: k8s.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)
        self.autoscaling = k8s.AutoscalingV2Api(self.api_client)
        self.discovery = k8s.DiscoveryV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)

    def close(self) -> None:
        self.api_client.close()


def _secrets_of(configuration: k8s.Configuration) -> list[str]:
    """Every credential value the configuration holds, to scrub from messages."""
    values: list[str] = []
    for value in (configuration.api_key or {}).values():
        if value:
            values.append(str(value))
            values.append(str(value).removeprefix("Bearer ").strip())
    for attr in ("password", "username"):
        value = getattr(configuration, attr, None)
        if value:
            values.append(str(value))
    return [v for v in values if len(v) >= 4]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with credentials removed: known secret values and any bearer token."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return re.sub(r"(?i)(bearer|token|password)([\s:=\"']+)\S+", r"\1\2<redacted>", text)


def _kubeconfig_paths(kubeconfig: str | os.PathLike[str] | None) -> str:
    if kubeconfig is not None:
        return str(Path(kubeconfig).expanduser())
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def load_configuration(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> tuple[k8s.Configuration, ContextInfo]:
    """The client configuration for ``context`` of ``kubeconfig`` (or the in-cluster one).

    Order: an explicit ``kubeconfig`` > ``$KUBECONFIG`` > ``~/.kube/config`` > in-cluster
    service account (only when no kubeconfig file exists and none was asked for).
    """
    paths = _kubeconfig_paths(kubeconfig)
    existing = [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    if not existing:
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            configuration = k8s.Configuration()
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except ConfigException as exc:
                raise LabError(
                    f"running in a pod but the service account cannot be used: {exc}"
                ) from None
            return configuration, ContextInfo("in-cluster", configuration.host, "in-cluster")
        raise LabError(
            f"no kubeconfig at {paths}: create a cluster with scripts/cluster-up.sh "
            "(docs/real-cluster.md), or pass kubeconfig=... / set KUBECONFIG"
        )
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=paths)
    except (ConfigException, ValueError, TypeError, OSError) as exc:
        raise LabError(
            f"kubeconfig {paths} cannot be read: {type(exc).__name__} "
            "(check that it is a valid kubeconfig file)"
        ) from None
    names = [c.get("name", "") for c in contexts or []]
    chosen = context or (active or {}).get("name")
    if not chosen:
        raise LabError(f"kubeconfig {paths} has no current-context; pass context=... ({names})")
    if chosen not in names:
        raise LabError(
            f"context {chosen!r} is not in kubeconfig {paths} (contexts: {', '.join(names)})"
        )
    entry = next(c for c in contexts if c.get("name") == chosen)
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=paths,
            context=chosen,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, ValueError, TypeError, OSError) as exc:
        message = redact(str(exc), _secrets_of(configuration))
        raise LabError(
            f"context {chosen!r} of kubeconfig {paths} cannot be loaded: {message[:300]}"
        ) from None
    info = ContextInfo.from_context(chosen, entry.get("context"), configuration.host)
    return configuration, info


def _reason(exc: BaseException) -> str:
    """A short, credential-free reason for a transport failure."""
    inner: BaseException | None = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        exc = inner
    name = type(exc).__name__
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Name or service not known", "certificate"):
        if marker.lower() in text.lower():
            return f"{name} ({marker.lower()})"
    return name


def probe(configuration: k8s.Configuration, info: ContextInfo, timeout: float) -> str:
    """GET /version with no retries and a short timeout; returns the server's gitVersion."""
    probe_config = copy.deepcopy(configuration)
    probe_config.retries = False
    secrets = _secrets_of(configuration)
    where = f"the Kubernetes API server at {info.server} (context {info.name!r})"
    with k8s.ApiClient(probe_config) as api_client:
        try:
            # raw JSON: the probe needs no model (and no strict validation of /version)
            response = k8s.VersionApi(api_client).get_code(
                _request_timeout=timeout, _preload_content=False
            )
            version = json.loads(response.data or b"{}")
        except ApiException as exc:
            if exc.status in (401, 403):
                raise LabError(
                    f"{where} rejected the kubeconfig credentials (HTTP {exc.status}): "
                    "refresh them (for kind: kind export kubeconfig --name zdlab)"
                ) from None
            reason = redact(str(exc.reason or ""), secrets)
            raise LabError(f"{where} answered HTTP {exc.status} {reason} to GET /version") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise LabError(
                f"cannot reach {where} within {timeout:g} s: {_reason(exc)}. Is the cluster "
                "running? Start one with scripts/cluster-up.sh (docs/real-cluster.md)."
            ) from None
    return str(version.get("gitVersion", "")) if isinstance(version, dict) else ""


def connect_clients(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    timeout: float = 5.0,
) -> tuple[KubeClients, str]:
    """Load the configuration, probe the server, return clients and the server version."""
    configuration, info = load_configuration(kubeconfig, context)
    server_version = probe(configuration, info, timeout)
    return KubeClients(k8s.ApiClient(configuration), info), server_version


def api_error(exc: ApiException, what: str) -> LabError:
    """A one-line ``LabError`` for a failed API call: what was attempted, status, message."""
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = ""
    detail = message or str(exc.reason or "")
    return LabError(f"{what}: HTTP {exc.status} {detail}".rstrip())
