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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
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
        untyped(self.api_client.close)()


# The kubernetes package annotates its generated API classes but not ``watch``, ``config``
# or ``ApiClient.close``; these give the calls the lab makes into them their real types.
WatchEvent = dict[str, Any]  # {"type": ..., "object": model, "raw_object": dict}


def untyped(function: Callable[..., Any]) -> Callable[..., None]:
    """A procedure of the kubernetes package (returns nothing the lab reads)."""
    return function


def new_watch() -> k8s_watch.Watch:
    return cast(Callable[[], k8s_watch.Watch], k8s_watch.Watch)()


def watch_stream(
    watcher: k8s_watch.Watch, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Iterator[WatchEvent]:
    """``Watch.stream``: events of a list function's watch (BOOKMARK and ERROR handled by
    the client: a bookmark moves ``watcher.resource_version``, a 410 raises ApiException)."""
    stream = cast(Callable[..., Iterator[WatchEvent]], watcher.stream)
    return stream(func, *args, **kwargs)


def stop_watch(watcher: k8s_watch.Watch) -> None:
    """``Watch.stop``: shuts the response's socket so a blocked read ends now."""
    untyped(watcher.stop)()


def json_object(value: object) -> dict[str, Any]:
    """The custom objects API's answer (decoded JSON, typed ``object``) as a dict; ``{}``
    when it is not one, so a reader's ``.get`` finds nothing instead of failing."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def raw_response(response: object) -> urllib3.BaseHTTPResponse:
    """What a generated API method returns with ``_preload_content=False``, typed as such
    (the generated signature names the model it would have decoded)."""
    return cast(urllib3.BaseHTTPResponse, response)


def _secrets_of(configuration: k8s.Configuration) -> list[str]:
    """Every credential value the configuration holds, to scrub from messages."""
    values: list[str] = []
    for value in (configuration.api_key or {}).values():
        if value:
            values.append(str(value))
            values.append(str(value).removeprefix("Bearer ").strip())
    for attr in ("password", "username"):
        credential = getattr(configuration, attr, None)
        if credential:
            values.append(str(credential))
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
                untyped(k8s_config.load_incluster_config)(client_configuration=configuration)
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
        listing = cast(
            Callable[..., tuple[list[dict[str, Any]], dict[str, Any] | None]],
            k8s_config.list_kube_config_contexts,
        )
        contexts, active = listing(config_file=paths)
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
        untyped(k8s_config.load_kube_config)(
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
            response = raw_response(
                k8s.VersionApi(api_client).get_code(
                    _request_timeout=timeout, _preload_content=False
                )
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


def _status_body(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` object the API server sent with an error, or ``{}``."""
    body = getattr(exc, "body", None)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def status_message(exc: ApiException) -> str:
    """The ``message`` of the server's ``Status`` (or the raw body, e.g. a kubelet's text)."""
    message = _status_body(exc).get("message")
    if message:
        return str(message)
    body = getattr(exc, "body", None)
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")


def apply_conflicts(exc: ApiException) -> list[tuple[str, str]]:
    """(field, manager) pairs of a server-side apply 409 (``FieldManagerConflict`` causes).

    The cause message is ``conflict with "MANAGER" using apps/v1`` for a manager that
    updated (patched or replaced) the field, ``conflict with "MANAGER"`` for one that
    applied it, and its ``field`` is the path, e.g. ``.spec.replicas`` (k8s.io/apiserver's
    ``NewConflictError``). The manager comes back as ``'NAME' (update)`` or ``'NAME'
    (apply)``: upstream tells managers apart by name *and* operation, so the lab's own
    ``set_weights`` patch (``'zdlab' (update)``) conflicts with its next apply.
    """
    if exc.status != 409:
        return []
    details = _status_body(exc).get("details") or {}
    conflicts = []
    for cause in details.get("causes") or []:
        if not isinstance(cause, dict) or cause.get("type") != "FieldManagerConflict":
            continue
        text = str(cause.get("message", ""))
        match = re.search(r'conflict with "([^"]*)"( using )?', text)
        who = f"{match.group(1)!r} ({'update' if match.group(2) else 'apply'})" if match else text
        conflicts.append((str(cause.get("field", "?")), who))
    return conflicts


def api_error(exc: ApiException, what: str) -> LabError:
    """A one-line ``LabError`` for a failed API call: what was attempted, status, message.

    A server-side apply conflict names each field and the manager that owns it, and says
    how to take them over."""
    conflicts = apply_conflicts(exc)
    if conflicts:
        shown = ", ".join(f"{field} (owned by {manager})" for field, manager in conflicts)
        return LabError(
            f"{what}: HTTP 409 conflict: another field manager set {shown}; apply with "
            "force=True to take them over (kubectl apply --server-side --force-conflicts)"
        )
    message = _status_body(exc).get("message", "")
    detail = message or str(exc.reason or "")
    return LabError(f"{what}: HTTP {exc.status} {detail}".rstrip())
