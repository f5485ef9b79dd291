"""Names, object references and durations: the small conversions every translator shares.

Istio resolves short host names against the object's namespace and names Envoy clusters
``outbound|PORT|SUBSET|HOST``; ``istioctl proxy-config`` output and the lab's lessons show
these names, so they must be exactly istiod's. Durations arrive as Go/protobuf strings
(``2s``, ``100ms``, ``1m30s``) and leave as protobuf JSON durations. Errors name the object
(``kind/name``) and the field, which is why the metadata helpers live here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab_app.errors import ManifestError
from lab_app.manifests.units import go_duration

__all__ = [
    "DEFAULT_NAMESPACE",
    "envoy_cluster_name",
    "envoy_duration",
    "object_name",
    "object_namespace",
    "object_ref",
    "parse_duration",
    "service_fqdn",
    "socket_address",
]

DEFAULT_NAMESPACE = "zdlab"


def service_fqdn(name: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """``NAME`` -> ``NAME.NAMESPACE.svc.cluster.local`` (Istio resolves short names this way)."""
    name = name.strip().rstrip(".")
    if name.endswith(".svc.cluster.local") or name == "*":
        return name
    parts = name.split(".")
    if len(parts) == 1:
        return f"{name}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{name}.svc.cluster.local"
    if name.endswith(".svc"):
        return f"{name}.cluster.local"
    return name


def envoy_cluster_name(port: int, host: str, subset: str = "") -> str:
    """Istio's outbound cluster name: ``outbound|PORT|SUBSET|HOST``."""
    return f"outbound|{port}|{subset}|{host}"


def parse_duration(value: Any, *, source: str = "", field_path: str = "") -> float:
    """A Go/protobuf duration (``2s``, ``100ms``, ``1m30s``) in seconds; a number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    total = go_duration(str(value).strip())
    if total is None:
        raise ManifestError(
            f"{value!r} is not a duration like 2s, 100ms or 1m30s", source=source, field=field_path
        )
    return total


def envoy_duration(seconds: float) -> str:
    """Seconds -> a protobuf JSON duration (``4s``, ``0.100s``)."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.9f}".rstrip("0") + "s"


def object_name(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` of a manifest dict ("" when missing)."""
    return str((obj.get("metadata") or {}).get("name", ""))


def object_ref(obj: Mapping[str, Any]) -> str:
    """``kind/name`` as error messages name the object (``virtualservice/app``)."""
    return f"{str(obj.get('kind', 'object')).lower()}/{object_name(obj)}"


def object_namespace(obj: Mapping[str, Any], default: str) -> str:
    """``metadata.namespace``, or ``default`` (the lab's namespace) when unset."""
    return str((obj.get("metadata") or {}).get("namespace") or default)


def socket_address(ip: str, port: int) -> dict[str, Any]:
    """An Envoy ``Address`` for ``ip:port``."""
    return {"socket_address": {"address": ip, "port_value": int(port)}}
