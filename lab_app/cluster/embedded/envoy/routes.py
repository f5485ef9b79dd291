"""VirtualService http routes -> Envoy routes, grouped into a gateway's route configuration.

Sources: istio/istio ``pilot/pkg/networking/core/route/route.go``.

- Each ``http[]`` entry gives one Envoy route per match (none: one catch-all route); the route
  name is ``http[].name`` (``NAME.MATCHNAME`` when the match is named too). Routes after a
  catch-all can never match and are left out, like istiod does.
- A single destination routes to one cluster; with several, destinations of weight 0 are left
  out of ``weighted_clusters`` (they still get a cluster). A subset routes to the cluster
  ``outbound|PORT|SUBSET|HOST``; a subset no DestinationRule defines is an error by default, or
  (``missing_subset="blackhole"``) routed anyway so that Envoy answers ``503 NC`` like Istio.
- ``timeout`` unset means no timeout (``0s``); retries follow ``retries.retry_policy``;
  ``headers`` set/add/remove become Envoy's header operations.
- Every route configuration adds ``x-envoy-flags: %RESPONSE_FLAGS%`` to responses, so a client
  can tell UF (connect failure), UC (connection closed), UH (no healthy upstream) apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lab_app.cluster.embedded.envoy import names
from lab_app.cluster.embedded.envoy.matches import (
    gateway_refs,
    host_matches,
    reject_unsupported,
    route_match,
)
from lab_app.cluster.embedded.envoy.retries import retry_policy
from lab_app.errors import ManifestError

__all__ = ["FLAGS_HEADER", "SUPPORTED_HTTP_KEYS", "Destinations", "gateway_route_config"]

SUPPORTED_HTTP_KEYS = {"name", "match", "route", "timeout", "retries", "headers"}
FLAGS_HEADER = {
    "header": {"key": "x-envoy-flags", "value": "%RESPONSE_FLAGS%"},
    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
}


class Destinations:
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
        host = names.service_fqdn(str(dest["host"]), self.namespace)
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
        return names.envoy_cluster_name(port, host, subset)


def gateway_route_config(
    route_name: str,
    *,
    port: int,
    server_hosts: Sequence[str],
    virtual_services: Sequence[Mapping[str, Any]],
    dests: Destinations,
    gateway_ref: str,
    namespace: str,
    default_retry_codes: Sequence[int] = (),
) -> dict[str, Any]:
    """The RouteConfiguration of one gateway server port: a virtual host per bound host.

    A VirtualService contributes when it names the Gateway (``gateway_ref``,
    ``NAMESPACE/NAME``) and one of its hosts matches one of the server's hosts."""
    vhosts: dict[str, dict[str, Any]] = {}
    for vs in virtual_services:
        vs_ns = names.object_namespace(vs, namespace)
        if gateway_ref not in gateway_refs((vs.get("spec") or {}).get("gateways"), vs_ns):
            continue
        vs_hosts = [str(h) for h in (vs.get("spec") or {}).get("hosts") or []]
        if not vs_hosts:
            raise ManifestError(
                "spec.hosts is required", source=names.object_ref(vs), field="spec.hosts"
            )
        bound = [h for h in vs_hosts if any(host_matches(p, h) for p in server_hosts)]
        if not bound:
            continue
        routes = _vs_routes(
            vs, dests, gateway_ref=gateway_ref, port=port, namespace=vs_ns,
            default_retry_codes=default_retry_codes,
        )  # fmt: skip
        for host in bound:
            vh = vhosts.setdefault(
                host,
                {
                    "name": f"{host}:{port}",
                    "domains": ["*"] if host == "*" else [host, f"{host}:*"],
                    "routes": [],
                },
            )
            vh["routes"].extend(routes)
    return {
        "name": route_name,
        "virtual_hosts": list(vhosts.values()),
        "validate_clusters": False,
        "response_headers_to_add": [FLAGS_HEADER],
    }


def _vs_routes(
    vs: Mapping[str, Any],
    dests: Destinations,
    *,
    gateway_ref: str,
    port: int,
    namespace: str,
    default_retry_codes: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """The Envoy routes of one VirtualService on one gateway port, in order."""
    source = names.object_ref(vs)
    spec = vs.get("spec") or {}
    out: list[dict[str, Any]] = []
    config = (
        f"/apis/networking.istio.io/v1/namespaces/{names.object_namespace(vs, namespace)}"
        f"/virtual-service/{names.object_name(vs)}"
    )
    meta = {"filter_metadata": {"istio": {"config": config}}}
    for i, http in enumerate(spec.get("http") or []):
        path = f"spec.http[{i}]"
        reject_unsupported(http, SUPPORTED_HTTP_KEYS, "http", source=source, path=path)
        action = _route_action(
            http, dests, source=source, path=path, default_retry_codes=default_retry_codes
        )
        for k, match in enumerate(http.get("match") or [None]):
            if match:
                if match.get("port") not in (None, port):
                    continue
                gws = match.get("gateways")
                if gws and gateway_ref not in gateway_refs(gws, namespace):
                    continue
            name = str(http.get("name", ""))
            if match and match.get("name"):
                name = f"{name}.{match['name']}" if name else str(match["name"])
            route: dict[str, Any] = {
                "name": name,
                "match": route_match(match, source=source, path=f"{path}.match[{k}]"),
                "route": dict(action),
                "metadata": meta,
                "decorator": {
                    "operation": f"{names.object_name(vs)}:{port}{'/' + name if name else ''}"
                },
            }
            if http.get("headers"):
                _header_operations(route, http["headers"])
            out.append(route)
            if route["match"] == {"prefix": "/"}:
                # routes after a catch-all can never match (istiod stops here too)
                return out
    return out


def _route_action(
    http: Mapping[str, Any],
    dests: Destinations,
    *,
    source: str,
    path: str,
    default_retry_codes: Sequence[int] = (),
) -> dict[str, Any]:
    """An ``http[]`` entry's destinations, timeout and retries -> an Envoy ``RouteAction``."""
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
        timeout = names.parse_duration(http["timeout"], source=source, field_path=f"{path}.timeout")
    action["timeout"] = names.envoy_duration(timeout)
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
    """``headers.request|response.set|add|remove`` -> the route's header operations."""
    for direction, add_key, remove_key in (
        ("request", "request_headers_to_add", "request_headers_to_remove"),
        ("response", "response_headers_to_add", "response_headers_to_remove"),
    ):
        ops = headers.get(direction) or {}
        for op, append_action in (
            ("set", "OVERWRITE_IF_EXISTS_OR_ADD"),
            ("add", "APPEND_IF_EXISTS_OR_ADD"),
        ):
            for key, value in (ops.get(op) or {}).items():
                route.setdefault(add_key, []).append(
                    {"header": {"key": key, "value": str(value)}, "append_action": append_action}
                )
        if ops.get("remove"):
            route.setdefault(remove_key, []).extend(str(h) for h in ops["remove"])
