"""Kubernetes/Istio objects -> Envoy resources, the way istiod builds them. Pure: no I/O.

Inputs are the plain dicts of ``manifests/`` (Gateway, VirtualService, DestinationRule,
Service) plus the endpoints the lab's endpoint controller publishes. Outputs are Envoy v3
resources as dicts in a ``Snapshot``; ``xds.XdsPusher`` attaches the file config sources and
the access log.

Where the defaults come from (istio/istio, ``pilot/pkg/networking/core``):

- Retries, ``route/retry/retry.go``: with ``retries`` unset a route gets
  ``num_retries: 2``, ``retry_on: connect-failure,refused-stream,unavailable,cancelled,
  retriable-status-codes`` (no status code: ``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`` defaults
  to true in ``pilot/pkg/features`` since 1.24; before, ``[503]``: ``default_retry_codes``
  follows the cluster's version profile), ``retry_host_predicate: previous_hosts`` and
  ``host_selection_retry_max_attempts: 5``. ``attempts: 0`` disables retries; otherwise the
  default is overridden field by field (``attempts`` -> ``num_retries``, ``retryOn`` ->
  ``retry_on`` with numeric parts moved to ``retriable_status_codes``, ``perTryTimeout`` ->
  ``per_try_timeout``); ``previous_hosts`` stays unless ``retryIgnorePreviousHosts: false``.
- Routes, ``route/route.go``: a single destination routes to one cluster; with several,
  destinations of weight 0 are left out of ``weighted_clusters``; ``timeout`` unset means no
  timeout (``0s``). Route names are the VirtualService ``http[].name``.
- Clusters, ``cluster_traffic_policy.go``: circuit breaker thresholds all at 2^32-1 with
  ``track_remaining`` (Envoy's own default ``max_retries: 3`` causes 503s during pod churn, the
  comment there says); ``connect_timeout`` from mesh config (10 s); ``lb_policy``
  ``LEAST_REQUEST`` by default; outlier detection with ``enforcing_success_rate: 0``,
  ``enforcing_consecutive_5xx/gateway_failure: 100`` when set, and ``healthy_panic_threshold``
  = ``minHealthPercent`` (0: panic mode off). Subset traffic policies replace the top-level
  ones block by block. Names: ``outbound|PORT|SUBSET|HOST``.
- Sidecar inbound route (``BuildDefaultHTTPInboundRoute``): cluster ``inbound|PORT||``,
  ``timeout: 0s``, ``retry_on: reset-before-request``, 2 retries.

Deliberate departure: the upstream idle timeout. Envoy/Istio keep idle upstream connections
for 1 h, the demo app (uvicorn) closes them after 5 s; if the app closes a connection just as
Envoy reuses it, the client gets ``503 UC``. The lab defaults to 4 s (below the app's
keep-alive), ``upstream_idle_timeout_s`` changes it, a DestinationRule's
``connectionPool.http.idleTimeout`` overrides it (set 1h to see the race).

Every route adds ``x-envoy-flags: %RESPONSE_FLAGS%`` to responses, so a client can tell
UF (connect failure), UC (connection closed), UH (no healthy upstream) apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lab_app.cluster.proxyconfig import (  # re-exported: the old import path
    ProxyConfigKind,
    ProxyConfigView,
    proxy_config_view,
)
from lab_app.errors import ManifestError
from lab_app.manifests.units import go_duration

__all__ = [
    "Endpoint",
    "ProxyConfigKind",
    "ProxyConfigView",
    "Snapshot",
    "envoy_cluster_name",
    "gateway_snapshot",
    "proxy_config_view",
    "retry_policy",
    "service_fqdn",
    "service_proxy_snapshot",
    "sidecar_snapshot",
]

MAX_U32 = 4294967295
DEFAULT_NAMESPACE = "zdlab"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
        "PreviousHostsPredicate"
    },
}
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
FLAGS_HEADER = {
    "header": {"key": "x-envoy-flags", "value": "%RESPONSE_FLAGS%"},
    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
}
LB_POLICIES = {
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",
    "ROUND_ROBIN": "ROUND_ROBIN",
    "RANDOM": "RANDOM",
}


# --- model -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """One pod address behind a Service: where its (sidecar or app) port listens."""

    ip: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    pod: str = ""
    ready: bool = True


@dataclass
class Snapshot:
    """Envoy v3 resources (dicts without ``@type``) that one proxy should run."""

    listeners: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)  # RouteConfiguration
    clusters: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # ClusterLoadAssignment

    def cluster(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.clusters if c["name"] == name), None)

    def route_config(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.routes if r["name"] == name), None)

    def load_assignment(self, cluster_name: str) -> dict[str, Any] | None:
        return next((e for e in self.endpoints if e["cluster_name"] == cluster_name), None)

    def cluster_names(self) -> list[str]:
        return [c["name"] for c in self.clusters]


# --- names and small conversions ---------------------------------------------------------------
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


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ref(obj: Mapping[str, Any]) -> str:
    return f"{str(obj.get('kind', 'object')).lower()}/{_name(obj)}"


def _namespace(obj: Mapping[str, Any], default: str) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or default)


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": int(port)}}


def _default_thresholds() -> dict[str, Any]:
    return {
        "max_connections": MAX_U32,
        "max_pending_requests": MAX_U32,
        "max_requests": MAX_U32,
        "max_retries": MAX_U32,
        "track_remaining": True,
    }


# --- DestinationRule -> cluster ----------------------------------------------------------------
def _merge_policy(
    top: Mapping[str, Any] | None, subset: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Subset policy replaces the top-level one block by block (connectionPool, outlier...)."""
    merged = dict(top or {})
    merged.update(subset or {})
    return merged


def _apply_traffic_policy(
    cluster: dict[str, Any],
    policy: Mapping[str, Any],
    *,
    source: str,
    path: str,
    idle_timeout_s: float,
) -> None:
    supported = {"connectionPool", "outlierDetection", "loadBalancer"}
    for key in policy:
        if key not in supported:
            raise ManifestError(
                f"trafficPolicy.{key} is not supported by the embedded backend "
                f"(supported: {', '.join(sorted(supported))})",
                source=source,
                field=f"{path}.{key}",
            )
    thresholds = _default_thresholds()
    idle = idle_timeout_s
    http_opts: dict[str, Any] = {}
    pool = policy.get("connectionPool") or {}
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
    if http.get("http1MaxPendingRequests"):
        thresholds["max_pending_requests"] = int(http["http1MaxPendingRequests"])
    if http.get("http2MaxRequests"):
        thresholds["max_requests"] = int(http["http2MaxRequests"])
    if http.get("maxRetries"):
        thresholds["max_retries"] = int(http["maxRetries"])
    if http.get("maxRequestsPerConnection"):
        http_opts["max_requests_per_connection"] = int(http["maxRequestsPerConnection"])
    if "idleTimeout" in http:
        idle = parse_duration(
            http["idleTimeout"], source=source, field_path=f"{path}.connectionPool.http.idleTimeout"
        )
    elif "idleTimeout" in tcp:
        idle = parse_duration(
            tcp["idleTimeout"], source=source, field_path=f"{path}.connectionPool.tcp.idleTimeout"
        )
    cluster["circuit_breakers"] = {"thresholds": [thresholds]}
    http_opts["idle_timeout"] = envoy_duration(idle)
    cluster["typed_extension_protocol_options"] = {
        HTTP_OPTIONS_KEY: {
            "@type": HTTP_OPTIONS_TYPE,
            "common_http_protocol_options": http_opts,
            "explicit_http_config": {"http_protocol_options": {}},
        }
    }

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
        out: dict[str, Any] = {"enforcing_success_rate": 0}
        fpath = f"{path}.outlierDetection"
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
                    parse_duration(
                        outlier[istio_key], source=source, field_path=f"{fpath}.{istio_key}"
                    )
                )
        if int(outlier.get("maxEjectionPercent", 0) or 0) > 0:
            out["max_ejection_percent"] = int(outlier["maxEjectionPercent"])
        cluster["outlier_detection"] = out
        min_health = int(outlier.get("minHealthPercent", 0) or 0)
        cluster["common_lb_config"]["healthy_panic_threshold"] = {"value": float(min_health)}


def _outbound_cluster(
    name: str,
    host: str,
    port: int,
    subset: str,
    *,
    namespace: str,
    connect_timeout_s: float,
    dr_name: str = "",
) -> dict[str, Any]:
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


def _load_assignment(
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
                "address": _address(e.ip, e.port),
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


# --- VirtualService -> routes ----------------------------------------------------------------
def retry_policy(
    retries: Mapping[str, Any] | None,
    *,
    source: str = "",
    path: str = "retries",
    default_status_codes: Sequence[int] = (),
) -> dict[str, Any] | None:
    """Istio's ``ConvertPolicy``: the default policy, overridden by the VirtualService's fields.

    ``default_status_codes``: the default policy's ``retriable_status_codes`` -- ``(503,)``
    before Istio 1.24 (``VersionProfile.default_retriable_status_codes``), none since."""
    policy: dict[str, Any] = {
        "num_retries": 2,
        "retry_on": DEFAULT_RETRY_ON,
        "retry_host_predicate": [PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": 5,
    }
    if default_status_codes:
        policy["retriable_status_codes"] = [int(c) for c in default_status_codes]
    if retries is None:
        return policy
    attempts = int(retries.get("attempts", 0) or 0)
    if attempts <= 0:
        return None
    policy["num_retries"] = attempts
    retry_on = str(retries.get("retryOn", "") or "")
    if retry_on:
        conditions, codes = [], []
        for part in (p.strip() for p in retry_on.split(",")):
            if not part:
                continue
            if part.isdigit() and 100 <= int(part) <= 599:
                codes.append(int(part))
            else:
                conditions.append(part)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        policy["retry_on"] = ",".join(conditions)
        policy.pop("retriable_status_codes", None)  # retryOn's codes replace the default's
        if codes:
            policy["retriable_status_codes"] = codes
    if "perTryTimeout" in retries:
        policy["per_try_timeout"] = envoy_duration(
            parse_duration(
                retries["perTryTimeout"], source=source, field_path=f"{path}.perTryTimeout"
            )
        )
    if retries.get("retryIgnorePreviousHosts") is False:
        policy.pop("retry_host_predicate")
    return policy


def _string_match(spec: Any, *, source: str, path: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ManifestError(
            "expected exactly one of exact, prefix, regex", source=source, field=path
        )
    ((kind, value),) = spec.items()
    if kind == "exact":
        return {"exact": str(value)}
    if kind == "prefix":
        return {"prefix": str(value)}
    if kind == "regex":
        return {"safe_regex": {"regex": str(value)}}
    raise ManifestError(
        f"match type {kind!r} is not supported (exact, prefix, regex)",
        source=source,
        field=f"{path}.{kind}",
    )


SUPPORTED_MATCH_KEYS = {
    "name",
    "uri",
    "headers",
    "method",
    "authority",
    "queryParams",
    "ignoreUriCase",
    "port",
    "gateways",
}


def _route_match(match: Mapping[str, Any] | None, *, source: str, path: str) -> dict[str, Any]:
    if not match:
        return {"prefix": "/"}
    unknown = set(match) - SUPPORTED_MATCH_KEYS
    if unknown:
        raise ManifestError(
            f"match field(s) {', '.join(sorted(unknown))} not supported by the embedded backend",
            source=source,
            field=f"{path}.{sorted(unknown)[0]}",
        )
    out: dict[str, Any] = {}
    uri = match.get("uri")
    if uri is None:
        out["prefix"] = "/"
    else:
        m = _string_match(uri, source=source, path=f"{path}.uri")
        if "exact" in m:
            out["path"] = m["exact"]
        elif "prefix" in m:
            out["prefix"] = m["prefix"]
        else:
            out["safe_regex"] = m["safe_regex"]
    if match.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = []
    for hname, hspec in (match.get("headers") or {}).items():
        headers.append(
            {
                "name": hname,
                "string_match": _string_match(hspec, source=source, path=f"{path}.headers.{hname}"),
            }
        )
    if "method" in match:
        headers.append(
            {
                "name": ":method",
                "string_match": _string_match(
                    match["method"], source=source, path=f"{path}.method"
                ),
            }
        )
    if "authority" in match:
        headers.append(
            {
                "name": ":authority",
                "string_match": _string_match(
                    match["authority"], source=source, path=f"{path}.authority"
                ),
            }
        )
    if headers:
        out["headers"] = headers
    params = []
    for qname, qspec in (match.get("queryParams") or {}).items():
        params.append(
            {
                "name": qname,
                "string_match": _string_match(
                    qspec, source=source, path=f"{path}.queryParams.{qname}"
                ),
            }
        )
    if params:
        out["query_parameters"] = params
    return out


def _vs_gateways(vs: Mapping[str, Any], namespace: str) -> set[str]:
    out = set()
    for g in (vs.get("spec") or {}).get("gateways") or []:
        g = str(g)
        out.add(g if "/" in g else f"{namespace}/{g}")
    return out


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*" or host == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or (host.startswith("*.") and host.endswith(pattern[1:]))
    return pattern == host


SUPPORTED_HTTP_KEYS = {"name", "match", "route", "timeout", "retries", "headers"}


class _Destinations:
    """Resolves VirtualService destinations to cluster names and collects the clusters needed."""

    def __init__(
        self,
        services: Mapping[str, Mapping[str, Any]],
        subsets: Mapping[str, Mapping[str, Any]],
        namespace: str,
        missing_subset: str,
    ) -> None:
        self.services = services
        self.subsets = subsets  # host -> {subset name -> subset}
        self.namespace = namespace
        self.missing_subset = missing_subset
        self.used: set[tuple[str, int]] = set()  # (host, port) pairs routed to

    def cluster_for(self, dest: Mapping[str, Any], *, source: str, path: str) -> str:
        if not isinstance(dest, Mapping) or not dest.get("host"):
            raise ManifestError("destination.host is required", source=source, field=f"{path}.host")
        host = service_fqdn(str(dest["host"]), self.namespace)
        port = (dest.get("port") or {}).get("number")
        if port is None:
            svc = self.services.get(host)
            ports = [p.get("port") for p in ((svc or {}).get("spec") or {}).get("ports") or []]
            if len(ports) != 1:
                why = (
                    "the Service is unknown"
                    if svc is None
                    else f"the Service has {len(ports)} ports"
                )
                raise ManifestError(
                    f"destination.port.number is needed for {host}: {why}",
                    source=source,
                    field=f"{path}.port.number",
                )
            port = ports[0]
        port = int(port)
        subset = str(dest.get("subset") or "")
        if subset and subset not in self.subsets.get(host, {}) and self.missing_subset == "error":
            known = ", ".join(sorted(self.subsets.get(host, {}))) or "none"
            raise ManifestError(
                f"subset {subset!r} of host {host} is not defined by any DestinationRule "
                f"(known subsets: {known}); add it to the DestinationRule before routing to it",
                source=source,
                field=f"{path}.subset",
            )
        self.used.add((host, port))
        return envoy_cluster_name(port, host, subset)


def _route_action(
    http: Mapping[str, Any],
    dests: _Destinations,
    *,
    source: str,
    path: str,
    default_retry_codes: Sequence[int] = (),
) -> dict[str, Any]:
    routes = http.get("route") or []
    if not routes:
        raise ManifestError(
            "http route has no route destinations", source=source, field=f"{path}.route"
        )
    action: dict[str, Any] = {}
    if len(routes) == 1:
        action["cluster"] = dests.cluster_for(
            routes[0].get("destination"), source=source, path=f"{path}.route[0].destination"
        )
    else:
        weighted = []
        for j, r in enumerate(routes):
            weight = int(r.get("weight", 0) or 0)
            if weight < 0:
                raise ManifestError(
                    "weight must not be negative", source=source, field=f"{path}.route[{j}].weight"
                )
            cluster = dests.cluster_for(
                r.get("destination"), source=source, path=f"{path}.route[{j}].destination"
            )
            if weight == 0:  # istiod leaves 0-weight destinations out (they still need a cluster)
                continue
            weighted.append({"name": cluster, "weight": weight})
        if not weighted:
            raise ManifestError(
                "the weights of the route destinations sum to 0: no destination would get traffic",
                source=source,
                field=f"{path}.route[*].weight",
            )
        action["weighted_clusters"] = {"clusters": weighted}
    timeout = 0.0
    if "timeout" in http:
        timeout = parse_duration(http["timeout"], source=source, field_path=f"{path}.timeout")
    action["timeout"] = envoy_duration(timeout)
    policy = retry_policy(
        http.get("retries"),
        source=source,
        path=f"{path}.retries",
        default_status_codes=default_retry_codes,
    )
    if policy is not None:
        action["retry_policy"] = policy
    return action


def _header_operations(route: dict[str, Any], headers: Mapping[str, Any]) -> None:
    for direction, add_key, remove_key in (
        ("request", "request_headers_to_add", "request_headers_to_remove"),
        ("response", "response_headers_to_add", "response_headers_to_remove"),
    ):
        ops = headers.get(direction) or {}
        for key, value in (ops.get("set") or {}).items():
            route.setdefault(add_key, []).append(
                {
                    "header": {"key": key, "value": str(value)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            )
        for key, value in (ops.get("add") or {}).items():
            route.setdefault(add_key, []).append(
                {
                    "header": {"key": key, "value": str(value)},
                    "append_action": "APPEND_IF_EXISTS_OR_ADD",
                }
            )
        if ops.get("remove"):
            route.setdefault(remove_key, []).extend(str(h) for h in ops["remove"])


def _vs_routes(
    vs: Mapping[str, Any],
    dests: _Destinations,
    *,
    gateway_ref: str,
    port: int,
    namespace: str,
    default_retry_codes: Sequence[int] = (),
) -> list[dict[str, Any]]:
    source = _ref(vs)
    spec = vs.get("spec") or {}
    out: list[dict[str, Any]] = []
    config = (
        f"/apis/networking.istio.io/v1/namespaces/{_namespace(vs, namespace)}"
        f"/virtual-service/{_name(vs)}"
    )
    meta = {"filter_metadata": {"istio": {"config": config}}}
    for i, http in enumerate(spec.get("http") or []):
        path = f"spec.http[{i}]"
        unknown = set(http) - SUPPORTED_HTTP_KEYS
        if unknown:
            raise ManifestError(
                f"http field(s) {', '.join(sorted(unknown))} not supported by the embedded backend",
                source=source,
                field=f"{path}.{sorted(unknown)[0]}",
            )
        action = _route_action(
            http, dests, source=source, path=path, default_retry_codes=default_retry_codes
        )
        matches = http.get("match") or [None]
        catchall = False
        for k, match in enumerate(matches):
            mpath = f"{path}.match[{k}]"
            if match:
                if match.get("port") not in (None, port):
                    continue
                gws = match.get("gateways")
                if gws and not any(
                    (g if "/" in g else f"{namespace}/{g}") == gateway_ref for g in gws
                ):
                    continue
            name = str(http.get("name", ""))
            if match and match.get("name"):
                name = f"{name}.{match['name']}" if name else str(match["name"])
            route: dict[str, Any] = {
                "name": name,
                "match": _route_match(match, source=source, path=mpath),
                "route": dict(action),
                "metadata": meta,
                "decorator": {"operation": f"{_name(vs)}:{port}{'/' + name if name else ''}"},
            }
            if http.get("headers"):
                _header_operations(route, http["headers"])
            out.append(route)
            if route["match"] == {"prefix": "/"}:
                catchall = True  # routes after a catch-all can never match (istiod stops here too)
                break
        if catchall:
            break
    return out


# --- public translation functions --------------------------------------------------------------
def _server_ports(gateway: Mapping[str, Any]) -> list[tuple[int, list[str], str]]:
    source = _ref(gateway)
    out: dict[int, tuple[list[str], str]] = {}
    servers = (gateway.get("spec") or {}).get("servers") or []
    if not servers:
        raise ManifestError("the Gateway has no servers", source=source, field="spec.servers")
    for i, server in enumerate(servers):
        port = server.get("port") or {}
        protocol = str(port.get("protocol", "HTTP")).upper()
        if protocol not in ("HTTP", "HTTP2"):
            raise ManifestError(
                f"protocol {protocol} is not supported by the embedded gateway (HTTP only)",
                source=source,
                field=f"spec.servers[{i}].port.protocol",
            )
        if "number" not in port:
            raise ManifestError(
                "port.number is required", source=source, field=f"spec.servers[{i}].port.number"
            )
        hosts = [str(h).split("/", 1)[-1] for h in server.get("hosts") or ["*"]]
        prev = out.get(int(port["number"]), ([], protocol))
        out[int(port["number"])] = (prev[0] + hosts, protocol)
    return [(p, hosts, proto) for p, (hosts, proto) in out.items()]


def gateway_snapshot(
    *,
    gateway: Mapping[str, Any],
    virtual_services: Sequence[Mapping[str, Any]],
    destination_rules: Sequence[Mapping[str, Any]] = (),
    endpoints: Mapping[str, Sequence[Endpoint]],
    services: Sequence[Mapping[str, Any]] = (),
    listen_port: int | Mapping[int, int] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    upstream_idle_timeout_s: float = 4.0,
    connect_timeout_s: float = 10.0,
    missing_subset: Literal["error", "blackhole"] = "error",
    default_retry_codes: Sequence[int] = (),
) -> Snapshot:
    """The ingress gateway's config for ``gateway`` and the VirtualServices bound to it.

    ``endpoints`` maps a Service (short name or FQDN) to its endpoints; only ready ones are
    used, filtered by each subset's labels. ``listen_port``: the local port for the Gateway's
    server port (an int when it has one port, or ``{gateway_port: local_port}``; default: the
    same number). ``missing_subset="blackhole"`` routes to a subset no DestinationRule defines
    anyway (Envoy answers ``503 NC`` like Istio would) instead of raising ``ManifestError``.
    ``default_retry_codes``: the status codes istiod's default retry policy retries (``503``
    before Istio 1.24; none since, ``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY``).
    """
    gw_source = _ref(gateway)
    gw_ns = _namespace(gateway, namespace)
    gateway_ref = f"{gw_ns}/{_name(gateway)}"
    server_ports = _server_ports(gateway)
    if isinstance(listen_port, Mapping):
        port_map = {int(k): int(v) for k, v in listen_port.items()}
    elif listen_port is not None:
        if len(server_ports) != 1:
            raise ManifestError(
                "the Gateway has several ports: give listen_port as {gateway_port: local_port}",
                source=gw_source,
                field="spec.servers",
            )
        port_map = {server_ports[0][0]: int(listen_port)}
    else:
        port_map = {}

    svc_by_host = {service_fqdn(_name(s), _namespace(s, namespace)): s for s in services}
    subsets: dict[str, dict[str, Any]] = {}
    policies: dict[str, tuple[str, Mapping[str, Any]]] = {}  # host -> (DR name, trafficPolicy)
    for dr in destination_rules:
        spec = dr.get("spec") or {}
        if not spec.get("host"):
            raise ManifestError("spec.host is required", source=_ref(dr), field="spec.host")
        host = service_fqdn(str(spec["host"]), _namespace(dr, namespace))
        policies[host] = (_name(dr), spec.get("trafficPolicy") or {})
        for k, subset in enumerate(spec.get("subsets") or []):
            if not subset.get("name"):
                raise ManifestError(
                    "subset name is required", source=_ref(dr), field=f"spec.subsets[{k}].name"
                )
            subsets.setdefault(host, {})[str(subset["name"])] = {
                **subset,
                "_dr": _name(dr),
                "_index": k,
            }
    dests = _Destinations(svc_by_host, subsets, namespace, missing_subset)

    snapshot = Snapshot()
    for gw_port, server_hosts, _protocol in sorted(server_ports):
        route_name = f"http.{gw_port}"
        vhosts: dict[str, dict[str, Any]] = {}
        for vs in virtual_services:
            vs_ns = _namespace(vs, namespace)
            if gateway_ref not in _vs_gateways(vs, vs_ns):
                continue
            vs_hosts = [str(h) for h in (vs.get("spec") or {}).get("hosts") or []]
            if not vs_hosts:
                raise ManifestError("spec.hosts is required", source=_ref(vs), field="spec.hosts")
            bound = [h for h in vs_hosts if any(_host_matches(p, h) for p in server_hosts)]
            if not bound:
                continue
            routes = _vs_routes(
                vs, dests, gateway_ref=gateway_ref, port=gw_port, namespace=vs_ns,
                default_retry_codes=default_retry_codes,
            )  # fmt: skip
            for host in bound:
                vh = vhosts.setdefault(
                    host,
                    {
                        "name": f"{host}:{gw_port}",
                        "domains": ["*"] if host == "*" else [host, f"{host}:*"],
                        "routes": [],
                    },
                )
                vh["routes"].extend(routes)
        snapshot.routes.append(
            {
                "name": route_name,
                "virtual_hosts": list(vhosts.values()),
                "validate_clusters": False,
                "response_headers_to_add": [FLAGS_HEADER],
            }
        )
        local_port = port_map.get(gw_port, gw_port)
        snapshot.listeners.append(
            {
                "name": f"0.0.0.0_{gw_port}",
                "address": _address("127.0.0.1", local_port),
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.http_connection_manager",
                                "typed_config": {
                                    "@type": HCM_TYPE,
                                    "stat_prefix": f"outbound_0.0.0.0_{gw_port}",
                                    "rds": {"route_config_name": route_name},
                                    "http_filters": [ROUTER],
                                    "use_remote_address": True,
                                    "normalize_path": True,
                                    "server_name": "istio-envoy",
                                },
                            }
                        ]
                    }
                ],
            }
        )

    # Clusters: every port of every known Service and every host routed to, x (default + subsets).
    host_ports: set[tuple[str, int]] = set(dests.used)
    for host, svc in svc_by_host.items():
        for p in (svc.get("spec") or {}).get("ports") or []:
            host_ports.add((host, int(p["port"])))
    eps_by_host = {service_fqdn(k, namespace): list(v) for k, v in endpoints.items()}
    for host, port in sorted(host_ports):
        dr_name, top_policy = policies.get(host, ("", {}))
        variants: list[tuple[str, Mapping[str, str], Mapping[str, Any], str]] = [
            ("", {}, top_policy, "spec.trafficPolicy")
        ]
        for sname, subset in subsets.get(host, {}).items():
            variants.append(
                (
                    sname,
                    subset.get("labels") or {},
                    _merge_policy(top_policy, subset.get("trafficPolicy")),
                    f"spec.subsets[{subset['_index']}].trafficPolicy",
                )
            )
        for sname, labels, policy, ppath in variants:
            cname = envoy_cluster_name(port, host, sname)
            cluster = _outbound_cluster(
                cname,
                host,
                port,
                sname,
                namespace=namespace,
                connect_timeout_s=connect_timeout_s,
                dr_name=dr_name,
            )
            _apply_traffic_policy(
                cluster,
                policy,
                source=f"destinationrule/{dr_name}" if dr_name else gw_source,
                path=ppath,
                idle_timeout_s=upstream_idle_timeout_s,
            )
            snapshot.clusters.append(cluster)
            snapshot.endpoints.append(_load_assignment(cname, eps_by_host.get(host, []), labels))
    return snapshot


def service_proxy_snapshot(
    service: Mapping[str, Any],
    endpoints: Sequence[Endpoint],
    *,
    listen_port: int,
    port: int | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    lb_policy: Literal["RANDOM", "ROUND_ROBIN", "LEAST_REQUEST"] = "RANDOM",
    connect_timeout_s: float = 5.0,
) -> Snapshot:
    """A kube-proxy stand-in (no Istio): a TCP listener balancing *connections* over endpoints.

    Like iptables kube-proxy, each new connection picks a ready endpoint at random (``RANDOM``;
    IPVS would be ``ROUND_ROBIN``) and there is no retry: a refused connection reaches the
    client as a closed connection. When an endpoint goes, connections already open to it stay
    (like conntrack entries) until either side closes them.
    """
    source = _ref(service)
    ports = [int(p["port"]) for p in (service.get("spec") or {}).get("ports") or []]
    if port is None:
        if not ports:
            raise ManifestError("the Service has no ports", source=source, field="spec.ports")
        port = ports[0]
    elif ports and port not in ports:
        raise ManifestError(f"the Service has no port {port}", source=source, field="spec.ports")
    if lb_policy not in ("RANDOM", "ROUND_ROBIN", "LEAST_REQUEST"):
        raise ManifestError(
            f"lb_policy {lb_policy!r} is not supported", source=source, field="lb_policy"
        )
    host = service_fqdn(_name(service), _namespace(service, namespace))
    cname = envoy_cluster_name(port, host)
    cluster = {
        "name": cname,
        "type": "EDS",
        "connect_timeout": envoy_duration(connect_timeout_s),
        "lb_policy": lb_policy,
        "common_lb_config": {},
        "circuit_breakers": {"thresholds": [_default_thresholds()]},
        "metadata": {
            "filter_metadata": {
                "istio": {
                    "services": [{"host": host, "name": _name(service), "namespace": namespace}]
                }
            }
        },
    }
    listener = {
        "name": f"kube-proxy_{port}",
        "address": _address("127.0.0.1", listen_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": TCP_PROXY_TYPE,
                            "stat_prefix": f"kube-proxy_{_name(service)}_{port}",
                            "cluster": cname,
                        },
                    }
                ]
            }
        ],
    }
    return Snapshot(
        listeners=[listener], clusters=[cluster], endpoints=[_load_assignment(cname, endpoints)]
    )


def sidecar_snapshot(
    pod_port: int,
    app_port: int,
    *,
    pod: str = "",
    app_protocol_port: int = 8080,
    upstream_idle_timeout_s: float = 4.0,
    connect_timeout_s: float = 10.0,
) -> Snapshot:
    """An inbound sidecar: listens on the pod's port (what the gateway's EDS points at) and
    forwards HTTP to the app on its own loopback port, as cluster ``inbound|PORT||``.

    ``app_protocol_port`` is the container port the names refer to (8080 in the manifests).
    The route is istiod's default inbound route: no timeout, ``reset-before-request`` retried
    twice. The upstream idle timeout stays below the app's keep-alive (see the module doc).
    """
    cname = f"inbound|{app_protocol_port}||"
    cluster: dict[str, Any] = {
        "name": cname,
        "type": "STATIC",
        "connect_timeout": envoy_duration(connect_timeout_s),
        "lb_policy": "ROUND_ROBIN",
        "common_lb_config": {},
        "circuit_breakers": {"thresholds": [_default_thresholds()]},
        "load_assignment": {
            "cluster_name": cname,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address("127.0.0.1", app_port)}}]}
            ],
        },
        "typed_extension_protocol_options": {
            HTTP_OPTIONS_KEY: {
                "@type": HTTP_OPTIONS_TYPE,
                "common_http_protocol_options": {
                    "idle_timeout": envoy_duration(upstream_idle_timeout_s)
                },
                "explicit_http_config": {"http_protocol_options": {}},
            }
        },
        "metadata": {"filter_metadata": {"istio": {"workload": pod}}},
    }
    route_config = {
        "name": cname,
        "validate_clusters": False,
        "virtual_hosts": [
            {
                "name": f"inbound|http|{app_protocol_port}",
                "domains": ["*"],
                "routes": [
                    {
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {
                            "cluster": cname,
                            "timeout": "0s",
                            "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2},
                        },
                        "decorator": {"operation": f"{pod or 'app'}:{app_protocol_port}/*"},
                    }
                ],
            }
        ],
    }
    listener = {
        "name": "virtualInbound",
        "address": _address("127.0.0.1", pod_port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": f"inbound_0.0.0.0_{app_protocol_port}",
                            "route_config": route_config,
                            "http_filters": [ROUTER],
                            "server_name": "istio-envoy",
                        },
                    }
                ]
            }
        ],
    }
    return Snapshot(listeners=[listener], clusters=[cluster])
