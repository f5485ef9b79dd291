"""DestinationRules -> Envoy clusters and their endpoints, the way istiod builds them.

Sources: istio/istio ``pilot/pkg/networking/core/cluster_traffic_policy.go`` and friends.

- One cluster per (host, port) and per subset, named ``outbound|PORT|SUBSET|HOST``; a subset's
  endpoints are the ready endpoints whose labels include the subset's labels.
- Circuit breaker thresholds all at 2^32-1 with ``track_remaining`` (Envoy's own default
  ``max_retries: 3`` causes 503s during pod churn, the comment there says);
  ``connect_timeout`` from mesh config (10 s); ``lb_policy`` ``LEAST_REQUEST`` by default.
- Outlier detection: ``enforcing_success_rate: 0``, ``enforcing_consecutive_5xx`` /
  ``gateway_failure: 100`` when set, and ``healthy_panic_threshold`` = ``minHealthPercent``
  (0: panic mode off).
- A subset's traffic policy replaces the top-level one block by block (connectionPool,
  outlierDetection, loadBalancer), it is not merged field by field.

Deliberate departure: the upstream idle timeout. Envoy/Istio keep idle upstream connections
for 1 h, the demo app (uvicorn) closes them after 5 s; if the app closes a connection just as
Envoy reuses it, the client gets ``503 UC``. The callers default to 4 s (below the app's
keep-alive); a DestinationRule's ``connectionPool.http.idleTimeout`` (or ``tcp.idleTimeout``)
overrides it (set 1h to see the race).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab_app.cluster.embedded.envoy.names import (
    envoy_cluster_name,
    envoy_duration,
    object_name,
    object_namespace,
    object_ref,
    parse_duration,
    service_fqdn,
    socket_address,
)
from lab_app.cluster.embedded.envoy.snapshot import Endpoint
from lab_app.errors import ManifestError

__all__ = [
    "MAX_U32",
    "DestinationRules",
    "default_thresholds",
    "http_protocol_options",
    "load_assignment",
    "outbound_clusters",
]

MAX_U32 = 4294967295
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
LB_POLICIES = {
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",
    "ROUND_ROBIN": "ROUND_ROBIN",
    "RANDOM": "RANDOM",
}
SUPPORTED_POLICY_KEYS = {"connectionPool", "outlierDetection", "loadBalancer"}


def default_thresholds() -> dict[str, Any]:
    """istiod's circuit breaker: every threshold at 2^32-1, i.e. effectively off."""
    return {
        "max_connections": MAX_U32,
        "max_pending_requests": MAX_U32,
        "max_requests": MAX_U32,
        "max_retries": MAX_U32,
        "track_remaining": True,
    }


def http_protocol_options(common: Mapping[str, Any]) -> dict[str, Any]:
    """A cluster's ``typed_extension_protocol_options``: HTTP/1.1 upstream, ``common`` options."""
    return {
        HTTP_OPTIONS_KEY: {
            "@type": HTTP_OPTIONS_TYPE,
            "common_http_protocol_options": common,
            "explicit_http_config": {"http_protocol_options": {}},
        }
    }


@dataclass
class DestinationRules:
    """The DestinationRules of one snapshot, indexed by host FQDN."""

    # host -> {subset name -> the subset spec, plus "_dr" (its rule) and "_index" (its position)}
    subsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # host -> (DestinationRule name, its top-level trafficPolicy)
    policies: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)

    @classmethod
    def index(cls, rules: Sequence[Mapping[str, Any]], namespace: str) -> DestinationRules:
        """Checks each rule's host and subset names; a later rule for a host wins its policy."""
        out = cls()
        for dr in rules:
            spec = dr.get("spec") or {}
            if not spec.get("host"):
                raise ManifestError(
                    "spec.host is required", source=object_ref(dr), field="spec.host"
                )
            host = service_fqdn(str(spec["host"]), object_namespace(dr, namespace))
            out.policies[host] = (object_name(dr), spec.get("trafficPolicy") or {})
            for k, subset in enumerate(spec.get("subsets") or []):
                if not subset.get("name"):
                    raise ManifestError(
                        "subset name is required",
                        source=object_ref(dr),
                        field=f"spec.subsets[{k}].name",
                    )
                out.subsets.setdefault(host, {})[str(subset["name"])] = {
                    **subset,
                    "_dr": object_name(dr),
                    "_index": k,
                }
        return out


def outbound_clusters(
    host_ports: set[tuple[str, int]],
    rules: DestinationRules,
    endpoints: Mapping[str, Sequence[Endpoint]],
    *,
    namespace: str,
    connect_timeout_s: float,
    idle_timeout_s: float,
    source: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(clusters, load assignments) for each (host, port): the default cluster + one a subset.

    ``endpoints`` maps a Service (short name or FQDN) to its endpoints; ``source`` names the
    object errors blame when no DestinationRule applies (the Gateway)."""
    clusters: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    eps_by_host = {service_fqdn(k, namespace): list(v) for k, v in endpoints.items()}
    for host, port in sorted(host_ports):
        dr_name, top_policy = rules.policies.get(host, ("", {}))
        variants: list[tuple[str, Mapping[str, str], Mapping[str, Any], str]] = [
            ("", {}, top_policy, "spec.trafficPolicy")
        ]
        for sname, subset in rules.subsets.get(host, {}).items():
            variants.append(
                (
                    sname,
                    subset.get("labels") or {},
                    {**top_policy, **(subset.get("trafficPolicy") or {})},  # block by block
                    f"spec.subsets[{subset['_index']}].trafficPolicy",
                )
            )
        for sname, labels, policy, ppath in variants:
            cname = envoy_cluster_name(port, host, sname)
            cluster = _outbound_cluster(
                cname,
                host,
                sname,
                namespace=namespace,
                connect_timeout_s=connect_timeout_s,
                dr_name=dr_name,
            )
            _apply_traffic_policy(
                cluster,
                policy,
                source=f"destinationrule/{dr_name}" if dr_name else source,
                path=ppath,
                idle_timeout_s=idle_timeout_s,
            )
            clusters.append(cluster)
            assignments.append(load_assignment(cname, eps_by_host.get(host, []), labels))
    return clusters, assignments


def load_assignment(
    cluster_name: str, endpoints: Sequence[Endpoint], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Ready endpoints whose labels include ``labels`` (a subset's selector)."""
    chosen = [
        e
        for e in endpoints
        if e.ready and all(e.labels.get(k) == v for k, v in (labels or {}).items())
    ]
    lb_endpoints = [
        {
            "endpoint": {
                "address": socket_address(e.ip, e.port),
                "hostname": e.pod or f"{e.ip}:{e.port}",
            },
            "metadata": {"filter_metadata": {"istio": {"workload": e.pod}}},
        }
        for e in sorted(chosen, key=lambda e: (e.ip, e.port))
    ]
    # No endpoints -> an empty locality list: Envoy then answers 503 UH ("no healthy upstream").
    return {
        "cluster_name": cluster_name,
        "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else [],
    }


def _outbound_cluster(
    name: str,
    host: str,
    subset: str,
    *,
    namespace: str,
    connect_timeout_s: float,
    dr_name: str = "",
) -> dict[str, Any]:
    """An EDS cluster with istiod's defaults and its ``istio`` metadata (proxy-config reads it)."""
    meta: dict[str, Any] = {
        "services": [{"host": host, "name": host.split(".")[0], "namespace": namespace}],
    }
    if dr_name:
        meta["config"] = (
            f"/apis/networking.istio.io/v1/namespaces/{namespace}/destination-rule/{dr_name}"
        )
    if subset:
        meta["subset"] = subset
    return {
        "name": name,
        "type": "EDS",
        "connect_timeout": envoy_duration(connect_timeout_s),
        "lb_policy": "LEAST_REQUEST",
        "common_lb_config": {},
        "metadata": {"filter_metadata": {"istio": meta}},
    }


def _apply_traffic_policy(
    cluster: dict[str, Any],
    policy: Mapping[str, Any],
    *,
    source: str,
    path: str,
    idle_timeout_s: float,
) -> None:
    """Sets the cluster's circuit breakers, protocol options, lb policy and outlier detection."""
    for key in policy:
        if key not in SUPPORTED_POLICY_KEYS:
            raise ManifestError(
                f"trafficPolicy.{key} is not supported by the embedded backend "
                f"(supported: {', '.join(sorted(SUPPORTED_POLICY_KEYS))})",
                source=source,
                field=f"{path}.{key}",
            )
    _apply_connection_pool(
        cluster, policy.get("connectionPool") or {}, source=source, path=path, idle=idle_timeout_s
    )
    lb = policy.get("loadBalancer") or {}
    if lb:
        simple = lb.get("simple")
        if simple not in LB_POLICIES or set(lb) - {"simple"}:
            raise ManifestError(
                f"loadBalancer {dict(lb)} is not supported (use simple: "
                + ", ".join(LB_POLICIES)
                + ")",
                source=source,
                field=f"{path}.loadBalancer",
            )
        cluster["lb_policy"] = LB_POLICIES[simple]
    outlier = policy.get("outlierDetection")
    if outlier is not None:
        cluster["outlier_detection"] = _outlier_detection(
            outlier, source=source, path=f"{path}.outlierDetection"
        )
        min_health = int(outlier.get("minHealthPercent", 0) or 0)
        cluster["common_lb_config"]["healthy_panic_threshold"] = {"value": float(min_health)}


def _apply_connection_pool(
    cluster: dict[str, Any], pool: Mapping[str, Any], *, source: str, path: str, idle: float
) -> None:
    """``connectionPool`` -> circuit breaker thresholds and HTTP protocol options."""
    thresholds = default_thresholds()
    http_opts: dict[str, Any] = {}
    tcp = pool.get("tcp") or {}
    http = pool.get("http") or {}
    if tcp.get("maxConnections"):
        thresholds["max_connections"] = int(tcp["maxConnections"])
    if "connectTimeout" in tcp:
        cluster["connect_timeout"] = envoy_duration(
            parse_duration(
                tcp["connectTimeout"],
                source=source,
                field_path=f"{path}.connectionPool.tcp.connectTimeout",
            )
        )
    for istio_key, threshold in (
        ("http1MaxPendingRequests", "max_pending_requests"),
        ("http2MaxRequests", "max_requests"),
        ("maxRetries", "max_retries"),
    ):
        if http.get(istio_key):
            thresholds[threshold] = int(http[istio_key])
    if http.get("maxRequestsPerConnection"):
        http_opts["max_requests_per_connection"] = int(http["maxRequestsPerConnection"])
    for block, settings in (("http", http), ("tcp", tcp)):  # http's idleTimeout wins
        if "idleTimeout" in settings:
            idle = parse_duration(
                settings["idleTimeout"],
                source=source,
                field_path=f"{path}.connectionPool.{block}.idleTimeout",
            )
            break
    cluster["circuit_breakers"] = {"thresholds": [thresholds]}
    http_opts["idle_timeout"] = envoy_duration(idle)
    cluster["typed_extension_protocol_options"] = http_protocol_options(http_opts)


def _outlier_detection(outlier: Mapping[str, Any], *, source: str, path: str) -> dict[str, Any]:
    """``outlierDetection`` -> Envoy's, with istiod's enforcement percentages."""
    out: dict[str, Any] = {"enforcing_success_rate": 0}
    for istio_key, envoy_key, enforce_key in (
        ("consecutive5xxErrors", "consecutive_5xx", "enforcing_consecutive_5xx"),
        (
            "consecutiveGatewayErrors",
            "consecutive_gateway_failure",
            "enforcing_consecutive_gateway_failure",
        ),
    ):
        if istio_key in outlier:
            value = int(outlier[istio_key])
            out[envoy_key] = value
            out[enforce_key] = 100 if value > 0 else 0
    for istio_key, envoy_key in (
        ("interval", "interval"),
        ("baseEjectionTime", "base_ejection_time"),
    ):
        if istio_key in outlier:
            out[envoy_key] = envoy_duration(
                parse_duration(outlier[istio_key], source=source, field_path=f"{path}.{istio_key}")
            )
    if int(outlier.get("maxEjectionPercent", 0) or 0) > 0:
        out["max_ejection_percent"] = int(outlier["maxEjectionPercent"])
    return out
