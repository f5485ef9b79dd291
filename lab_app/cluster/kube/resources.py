"""Which Kubernetes API call serves each kind of manifest the lab uses.

The lab applies a small, known set of kinds, so a static table is clearer (and
testable without a server) than API discovery: for each kind it says the client API
object, the method family, the plural and whether the kind is namespaced. Requests are
described as plain data (``ApiRequest``) first and executed afterwards, so the
translation from manifest to request can be unit-tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab_app.errors import ManifestError
from lab_app.manifests.names import split_ref

FIELD_MANAGER = "zdlab"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
ISTIO_GROUP = "networking.istio.io"


@dataclass(frozen=True)
class ResourceType:
    """One kind the lab knows how to apply, read and delete."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    api: str  # attribute of KubeClients: core | apps | autoscaling | custom
    suffix: str = ""  # method suffix of the typed API, e.g. "namespaced_deployment"
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def custom(self) -> bool:
        return self.api == "custom"


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("Namespace", "", "v1", "namespaces", False, "core", "namespace", ("ns",)),
    ResourceType(
        "ConfigMap", "", "v1", "configmaps", True, "core", "namespaced_config_map", ("cm",)
    ),
    ResourceType("Service", "", "v1", "services", True, "core", "namespaced_service", ("svc",)),
    ResourceType(
        "Deployment",
        "apps",
        "v1",
        "deployments",
        True,
        "apps",
        "namespaced_deployment",
        ("deploy",),
    ),
    ResourceType(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        True,
        "autoscaling",
        "namespaced_horizontal_pod_autoscaler",
        ("hpa",),
    ),
    ResourceType("Gateway", ISTIO_GROUP, "v1", "gateways", True, "custom", "", ("gw",)),
    ResourceType(
        "VirtualService", ISTIO_GROUP, "v1", "virtualservices", True, "custom", "", ("vs",)
    ),
    ResourceType(
        "DestinationRule", ISTIO_GROUP, "v1", "destinationrules", True, "custom", "", ("dr",)
    ),
)

# Apply order: what others refer to goes first. A DestinationRule (subsets) goes before
# the VirtualService that routes to its subsets: make before break. Deletion is reversed.
APPLY_ORDER = {
    "Namespace": 0,
    "ConfigMap": 1,
    "Service": 2,
    "Deployment": 3,
    "HorizontalPodAutoscaler": 4,
    "Gateway": 5,
    "DestinationRule": 6,
    "VirtualService": 7,
}

_BY_KIND = {rt.kind: rt for rt in RESOURCE_TYPES}
_BY_ALIAS: dict[str, ResourceType] = {}
for _rt in RESOURCE_TYPES:
    for _alias in (_rt.kind.lower(), _rt.plural, *_rt.short_names):
        _BY_ALIAS[_alias] = _rt
    if _rt.group:
        _BY_ALIAS[f"{_rt.kind.lower()}.{_rt.group}"] = _rt
        _BY_ALIAS[f"{_rt.plural}.{_rt.group}"] = _rt

KNOWN_KINDS = ", ".join(rt.kind for rt in RESOURCE_TYPES)


@dataclass(frozen=True)
class ApiRequest:
    """A call on one of the client's API objects, described as data."""

    api: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k != "body")
        return f"{self.api}.{self.method}({args})"


def resource_type(obj: dict[str, Any], source: str = "<manifest>") -> ResourceType:
    """The ``ResourceType`` of a manifest object; ``ManifestError`` for kinds the lab lacks."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not kind or not api_version:
        raise ManifestError("object has no kind or apiVersion", source=source, field="kind")
    rt = _BY_KIND.get(kind)
    if rt is None:
        raise ManifestError(
            f"kind {kind!r} is not one the lab applies (known: {KNOWN_KINDS})",
            source=source,
            field="kind",
        )
    group, _, version = api_version.rpartition("/")
    if group != rt.group:
        raise ManifestError(
            f"{kind} must have apiVersion {rt.api_version}, not {api_version!r}",
            source=source,
            field="apiVersion",
        )
    if rt.custom and version != rt.version:
        # Istio serves v1, v1beta1 and v1alpha3 of the same objects: keep what was asked.
        return ResourceType(rt.kind, rt.group, version, rt.plural, rt.namespaced, rt.api, rt.suffix)
    return rt


def parse_ref(ref: str) -> tuple[ResourceType, str] | None:
    """``"deployment/NAME"`` (or ``deploy/``, ``vs/``, ``virtualservices/``...) -> (type, name).

    Returns ``None`` when ``ref`` is not a reference to a kind the lab knows, so the
    caller treats it as a path or YAML text (whose loader reports what is wrong).
    """
    parts = split_ref(ref)
    if parts is None:
        return None
    rt = _BY_ALIAS.get(parts[0].lower())
    if rt is None:  # e.g. "istio/gateway.yaml" or "manifests/x": a path, not a kind
        return None
    return rt, parts[1]


def object_name(obj: dict[str, Any], source: str = "<manifest>") -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ManifestError("object has no metadata.name", source=source, field="metadata.name")
    return str(name)


def with_namespace(obj: dict[str, Any], rt: ResourceType, namespace: str) -> dict[str, Any]:
    """A copy of ``obj`` placed in ``namespace`` (manifests carry none; an explicit one wins)."""
    if not rt.namespaced:
        return obj
    metadata = dict(obj.get("metadata") or {})
    metadata.setdefault("namespace", namespace)
    return {**obj, "metadata": metadata}


def _target(rt: ResourceType, name: str, namespace: str) -> dict[str, Any]:
    """The keyword arguments that locate one object for its API family."""
    if rt.custom:
        return {
            "group": rt.group,
            "version": rt.version,
            "namespace": namespace,
            "plural": rt.plural,
            "name": name,
        }
    return {"name": name, "namespace": namespace} if rt.namespaced else {"name": name}


def _method(rt: ResourceType, verb: str) -> str:
    if rt.custom:
        return f"{verb}_namespaced_custom_object"
    return f"{verb}_{rt.suffix}"


def apply_request(
    obj: dict[str, Any],
    namespace: str,
    source: str = "<manifest>",
    *,
    dry_run: bool = False,
    force: bool = True,
) -> ApiRequest:
    """Server-side apply of ``obj`` (PATCH application/apply-patch+yaml, manager ``zdlab``).

    Server-side apply creates the object when it is missing and otherwise merges the
    fields this manager owns, so re-applying a file is idempotent like ``kubectl apply``.
    ``force`` (``kubectl apply --server-side --force-conflicts``) takes over fields last
    set by another manager (e.g. ``kubectl edit``); without it the server answers 409
    Conflict naming each such field and its manager.
    """
    rt = resource_type(obj, source)
    name = object_name(obj, source)
    body = with_namespace(obj, rt, namespace)
    ns = (body.get("metadata") or {}).get("namespace", namespace)
    kwargs = _target(rt, name, ns)
    kwargs.update(body=body, field_manager=FIELD_MANAGER, force=force, _content_type=APPLY_PATCH)
    if dry_run:
        kwargs["dry_run"] = "All"
    return ApiRequest(rt.api, _method(rt, "patch"), kwargs)


def delete_request(rt: ResourceType, name: str, namespace: str) -> ApiRequest:
    """Delete one object; dependents (ReplicaSets, Pods) are garbage-collected in background."""
    kwargs = _target(rt, name, namespace)
    kwargs["propagation_policy"] = "Background"
    return ApiRequest(rt.api, _method(rt, "delete"), kwargs)


def read_request(rt: ResourceType, name: str, namespace: str) -> ApiRequest:
    method = "get_namespaced_custom_object" if rt.custom else f"read_{rt.suffix}"
    return ApiRequest(rt.api, method, _target(rt, name, namespace))


def patch_request(
    rt: ResourceType, name: str, namespace: str, body: Any, content_type: str
) -> ApiRequest:
    """A non-apply patch (merge or strategic merge) recorded under field manager ``zdlab``."""
    kwargs = _target(rt, name, namespace)
    kwargs.update(body=body, field_manager=FIELD_MANAGER, _content_type=content_type)
    return ApiRequest(rt.api, _method(rt, "patch"), kwargs)


def type_for_kind(kind: str) -> ResourceType:
    rt = _BY_KIND.get(kind) or _BY_ALIAS.get(kind.lower())
    if rt is None:
        raise ManifestError(f"unknown kind {kind!r} (known: {KNOWN_KINDS})", field="kind")
    return rt


def ref(rt: ResourceType, name: str) -> str:
    """The ``kind/name`` form the lab reports (lower-case kind, like event objects)."""
    return f"{rt.kind.lower()}/{name}"
