"""Kubernetes/Istio objects -> Envoy resources, the way istiod builds them. Pure: no I/O.

Inputs are the plain dicts of ``manifests/`` (Gateway, VirtualService, DestinationRule,
Service) plus the endpoints the lab's endpoint controller publishes. Outputs are Envoy v3
resources as dicts in a ``Snapshot``; ``xds.XdsPusher`` attaches the file config sources and
the access log.

This module is the entry point: one function per kind of proxy, composing the translators,
each of which documents the istiod behaviour it reproduces (istio/istio,
``pilot/pkg/networking/core``):

- ``listeners.py``: Gateway servers -> listeners ``0.0.0.0_PORT`` (RDS ``http.PORT``).
- ``routes.py`` (+ ``matches.py``): VirtualService http routes -> Envoy routes: destinations,
  weights (0-weight ones left out), timeouts (unset: ``0s``), header operations, the
  ``x-envoy-flags: %RESPONSE_FLAGS%`` response header, missing subset -> error or ``503 NC``.
- ``retries.py``: istiod's default retry policy and its dependence on the Istio version.
- ``clusters.py``: DestinationRule subsets and traffic policies -> clusters
  ``outbound|PORT|SUBSET|HOST`` and their endpoints; also the lab's one deliberate departure,
  the upstream idle timeout (4 s by default, below the demo app's keep-alive).
- ``names.py``: host FQDNs, cluster names, durations; ``snapshot.py``: ``Endpoint``,
  ``Snapshot``.

The sidecar's inbound route is istiod's ``BuildDefaultHTTPInboundRoute``: cluster
``inbound|PORT||``, ``timeout: 0s``, ``retry_on: reset-before-request``, 2 retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from lab_app.cluster.embedded.envoy import names
from lab_app.cluster.embedded.envoy.clusters import (
    MAX_U32,
    DestinationRules,
    default_thresholds,
    http_protocol_options,
    load_assignment,
    outbound_clusters,
)
from lab_app.cluster.embedded.envoy.listeners import (
    gateway_listener,
    gateway_server_ports,
    http_connection_manager,
    listener,
    local_ports,
    tcp_proxy,
)
from lab_app.cluster.embedded.envoy.names import (
    DEFAULT_NAMESPACE,
    envoy_cluster_name,
    envoy_duration,
    parse_duration,
    service_fqdn,
)
from lab_app.cluster.embedded.envoy.retries import inbound_retry_policy, retry_policy
from lab_app.cluster.embedded.envoy.routes import Destinations, gateway_route_config
from lab_app.cluster.embedded.envoy.snapshot import Endpoint, Snapshot
from lab_app.cluster.proxyconfig import (  # re-exported: the old import path
    ProxyConfigKind,
    ProxyConfigView,
    proxy_config_view,
)
from lab_app.errors import ManifestError

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_U32",
    "Endpoint",
    "ProxyConfigKind",
    "ProxyConfigView",
    "Snapshot",
    "envoy_cluster_name",
    "envoy_duration",
    "gateway_snapshot",
    "parse_duration",
    "proxy_config_view",
    "retry_policy",
    "service_fqdn",
    "service_proxy_snapshot",
    "sidecar_snapshot",
]


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
    gw_source = names.object_ref(gateway)
    gateway_ref = f"{names.object_namespace(gateway, namespace)}/{names.object_name(gateway)}"
    server_ports = gateway_server_ports(gateway)
    port_map = local_ports(listen_port, server_ports, source=gw_source)
    svc_by_host = {
        service_fqdn(names.object_name(s), names.object_namespace(s, namespace)): s
        for s in services
    }
    rules = DestinationRules.index(destination_rules, namespace)
    dests = Destinations(svc_by_host, rules.subsets, namespace, missing_subset)

    snapshot = Snapshot()
    for gw_port, server_hosts, _protocol in sorted(server_ports):
        route_name = f"http.{gw_port}"
        snapshot.routes.append(
            gateway_route_config(
                route_name,
                port=gw_port,
                server_hosts=server_hosts,
                virtual_services=virtual_services,
                dests=dests,
                gateway_ref=gateway_ref,
                namespace=namespace,
                default_retry_codes=default_retry_codes,
            )
        )
        snapshot.listeners.append(
            gateway_listener(gw_port, port_map.get(gw_port, gw_port), route_name)
        )

    # Clusters: every port of every known Service and every host routed to, x (default + subsets).
    host_ports: set[tuple[str, int]] = set(dests.used)
    for host, svc in svc_by_host.items():
        for p in (svc.get("spec") or {}).get("ports") or []:
            host_ports.add((host, int(p["port"])))
    snapshot.clusters, snapshot.endpoints = outbound_clusters(
        host_ports,
        rules,
        endpoints,
        namespace=namespace,
        connect_timeout_s=connect_timeout_s,
        idle_timeout_s=upstream_idle_timeout_s,
        source=gw_source,
    )
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
    source = names.object_ref(service)
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
    name = names.object_name(service)
    host = service_fqdn(name, names.object_namespace(service, namespace))
    cname = envoy_cluster_name(port, host)
    cluster = {
        "name": cname,
        "type": "EDS",
        "connect_timeout": envoy_duration(connect_timeout_s),
        "lb_policy": lb_policy,
        "common_lb_config": {},
        "circuit_breakers": {"thresholds": [default_thresholds()]},
        "metadata": {
            "filter_metadata": {
                "istio": {"services": [{"host": host, "name": name, "namespace": namespace}]}
            }
        },
    }
    return Snapshot(
        listeners=[
            listener(
                f"kube-proxy_{port}", listen_port, tcp_proxy(f"kube-proxy_{name}_{port}", cname)
            )
        ],
        clusters=[cluster],
        endpoints=[load_assignment(cname, endpoints)],
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
    twice. The upstream idle timeout stays below the app's keep-alive (see ``clusters.py``).
    """
    cname = f"inbound|{app_protocol_port}||"
    cluster: dict[str, Any] = {
        "name": cname,
        "type": "STATIC",
        "connect_timeout": envoy_duration(connect_timeout_s),
        "lb_policy": "ROUND_ROBIN",
        "common_lb_config": {},
        "circuit_breakers": {"thresholds": [default_thresholds()]},
        "load_assignment": {
            "cluster_name": cname,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": names.socket_address("127.0.0.1", app_port)}}
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": http_protocol_options(
            {"idle_timeout": envoy_duration(upstream_idle_timeout_s)}
        ),
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
                            "retry_policy": inbound_retry_policy(),
                        },
                        "decorator": {"operation": f"{pod or 'app'}:{app_protocol_port}/*"},
                    }
                ],
            }
        ],
    }
    inbound = http_connection_manager(
        f"inbound_0.0.0.0_{app_protocol_port}", {"route_config": route_config}
    )
    return Snapshot(listeners=[listener("virtualInbound", pod_port, inbound)], clusters=[cluster])
