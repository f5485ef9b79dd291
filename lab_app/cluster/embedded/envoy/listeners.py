"""Gateway servers -> Envoy listeners, and the listener shapes the other proxies use.

A Gateway's servers are grouped by port: one listener ``0.0.0.0_PORT`` per port, whose HTTP
connection manager reads the route configuration ``http.PORT`` over RDS (as istiod names
them). The embedded backend only serves plain HTTP and binds every listener on 127.0.0.1; the
local port may differ from the Gateway's (``listen_port``), since several lab clusters share a
machine. The kube-proxy stand-in is a TCP proxy listener and a sidecar's inbound listener
``virtualInbound`` an HTTP connection manager with its route configuration inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab_app.cluster.embedded.envoy.names import object_ref, socket_address
from lab_app.errors import ManifestError

__all__ = [
    "HCM_TYPE",
    "ROUTER",
    "TCP_PROXY_TYPE",
    "gateway_listener",
    "gateway_server_ports",
    "http_connection_manager",
    "listener",
    "local_ports",
    "tcp_proxy",
]

ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def gateway_server_ports(gateway: Mapping[str, Any]) -> list[tuple[int, list[str], str]]:
    """``[(port, hosts, protocol)]``: the Gateway's servers grouped by port (HTTP only)."""
    source = object_ref(gateway)
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


def local_ports(
    listen_port: int | Mapping[int, int] | None,
    server_ports: list[tuple[int, list[str], str]],
    *,
    source: str,
) -> dict[int, int]:
    """``{gateway port: local port}`` from ``listen_port`` (an int needs a one-port Gateway)."""
    if isinstance(listen_port, Mapping):
        return {int(k): int(v) for k, v in listen_port.items()}
    if listen_port is None:
        return {}
    if len(server_ports) != 1:
        raise ManifestError(
            "the Gateway has several ports: give listen_port as {gateway_port: local_port}",
            source=source,
            field="spec.servers",
        )
    return {server_ports[0][0]: int(listen_port)}


def listener(name: str, port: int, network_filter: dict[str, Any]) -> dict[str, Any]:
    """A listener on ``127.0.0.1:port`` with one filter chain holding ``network_filter``."""
    return {
        "name": name,
        "address": socket_address("127.0.0.1", port),
        "filter_chains": [{"filters": [network_filter]}],
    }


def http_connection_manager(
    stat_prefix: str, routes: Mapping[str, Any], **options: Any
) -> dict[str, Any]:
    """An HTTP connection manager filter: ``routes`` is ``{"rds": ...}`` or
    ``{"route_config": ...}``, ``options`` HCM fields set before ``server_name``."""
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": stat_prefix,
            **routes,
            "http_filters": [ROUTER],
            **options,
            "server_name": "istio-envoy",
        },
    }


def tcp_proxy(stat_prefix: str, cluster: str) -> dict[str, Any]:
    """A TCP proxy filter to ``cluster`` (per-connection balancing, no retries)."""
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": TCP_PROXY_TYPE, "stat_prefix": stat_prefix, "cluster": cluster},
    }


def gateway_listener(gateway_port: int, local_port: int, route_name: str) -> dict[str, Any]:
    """The gateway listener of one server port, as istiod builds it (routes over RDS)."""
    return listener(
        f"0.0.0.0_{gateway_port}",
        local_port,
        http_connection_manager(
            f"outbound_0.0.0.0_{gateway_port}",
            {"rds": {"route_config_name": route_name}},
            use_remote_address=True,
            normalize_path=True,
        ),
    )
