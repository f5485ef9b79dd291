"""Has the ingress gateway's Envoy caught up with the VirtualServices applied?

Istio applies routing asynchronously: istiod debounces changes, then pushes them to every
proxy, so a request sent right after ``apply`` or ``set_weights`` may still meet the old
route. Rather than parse ``istioctl proxy-status`` (whose output changes between Istio
versions), the lab compares what matters to it directly: for each VirtualService bound to
a gateway, the gateway's route from that VirtualService must split traffic in the same
shares as its spec, and every cluster it routes to must have a healthy endpoint. The
comparison works on the rows of the shared ``proxy_config_view`` (the same view
``proxy_config()`` returns), so it reads the real Envoy configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from lab_app.manifests.names import short_name

Shares = dict[tuple[str, str], Fraction]  # (short host, subset) -> share of traffic


def expected_shares(http: Mapping[str, Any]) -> Shares:
    """The traffic split one ``spec.http[]`` entry asks for; weight-0 routes get nothing."""
    routes = http.get("route") or []
    weights = []
    for route in routes:
        destination = route.get("destination") or {}
        weight = route.get("weight")
        if weight is None:
            weight = 100 if len(routes) == 1 else 0
        key = (short_name(str(destination.get("host", ""))), str(destination.get("subset") or ""))
        weights.append((key, int(weight)))
    total = sum(w for _, w in weights if w > 0)
    if total == 0:
        return {}
    shares: Shares = {}
    for key, weight in weights:
        if weight > 0:
            shares[key] = shares.get(key, Fraction(0)) + Fraction(weight, total)
    return shares


def route_shares(weights: Mapping[str, int]) -> Shares:
    """The split an Envoy route row holds (``{"outbound|8080|version-v1|fqdn": 90, ...}``)."""
    positive = {name: int(w) for name, w in weights.items() if int(w) > 0}
    total = sum(positive.values())
    shares: Shares = {}
    for name, weight in positive.items():
        parts = name.split("|")
        key = (short_name(parts[3]), parts[2]) if len(parts) == 4 else (short_name(name), "")
        shares[key] = shares.get(key, Fraction(0)) + Fraction(weight, total)
    return shares


def gateway_bound(virtualservice: Mapping[str, Any]) -> bool:
    gateways = (virtualservice.get("spec") or {}).get("gateways") or []
    return any(g != "mesh" for g in gateways)


def settle_problem(
    virtualservices: Sequence[Mapping[str, Any]],
    route_rows: Sequence[Mapping[str, Any]],
    endpoint_rows: Sequence[Mapping[str, Any]] | None,
    namespace: str,
) -> str | None:
    """What is not yet in the gateway (one line), or ``None`` when it holds the config.

    ``endpoint_rows`` ``None`` skips the endpoint check (e.g. while routes still differ).
    """
    healthy = {
        str(row.get("CLUSTER", ""))
        for row in endpoint_rows or []
        if str(row.get("STATUS", "")).upper() == "HEALTHY"
    }
    for vs in virtualservices:
        if not gateway_bound(vs):
            continue
        name = (vs.get("metadata") or {}).get("name", "")
        label = f"{name}.{namespace}"
        rows = [r for r in route_rows if r.get("VIRTUAL SERVICE") == label]
        if not rows:
            return f"the gateway has no route from virtualservice/{name} yet"
        held = [route_shares(r.get("weights") or {}) for r in rows]
        for index, http in enumerate((vs.get("spec") or {}).get("http") or []):
            wanted = expected_shares(http)
            if wanted and wanted not in held:
                shown = ", ".join(f"{s or h} {float(v) * 100:.0f}%" for (h, s), v in wanted.items())
                return (
                    f"the gateway does not route virtualservice/{name} http[{index}] as {shown} yet"
                )
        if endpoint_rows is None:
            continue
        for row in rows:
            for cluster, weight in (row.get("weights") or {}).items():
                if int(weight) > 0 and cluster not in healthy:
                    return f"the gateway has no healthy endpoint in {cluster} yet"
    return None


# The config dump sections whose entries carry Envoy's ``error_state`` (UpdateFailureState:
# "set if the last update failed, cleared after the next successful update").
_ERROR_STATE_KEYS = (
    "dynamic_listeners",
    "dynamic_active_clusters",
    "dynamic_warming_clusters",
    "dynamic_route_configs",
    "dynamic_endpoint_configs",
)


def rejected_updates(config_dump: Mapping[str, Any]) -> dict[str, str]:
    """Resources of an Envoy ``/config_dump`` whose latest update was rejected (NACKed):
    ``{resource name: Envoy's reason}``; empty when every latest update was accepted."""
    out: dict[str, str] = {}
    for section in config_dump.get("configs") or []:
        if not isinstance(section, Mapping):
            continue
        for key in _ERROR_STATE_KEYS:
            for item in section.get(key) or []:
                if not isinstance(item, Mapping):
                    continue
                error = item.get("error_state") or {}
                nacked = str(item.get("client_status", "")).upper() == "NACKED"
                if not error and not nacked:
                    continue
                name = item.get("name") or _resource_name(item) or key
                out[str(name)] = str(error.get("details") or "rejected (NACK)")
    return out


def _resource_name(item: Mapping[str, Any]) -> str:
    for field in ("route_config", "cluster", "endpoint_config"):
        value = item.get(field)
        if isinstance(value, Mapping):
            return str(value.get("name") or value.get("cluster_name") or "")
    return ""
