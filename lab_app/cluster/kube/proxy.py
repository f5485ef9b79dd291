"""What an Envoy of the mesh holds: ``istioctl proxy-config``, or its admin API directly.

With ``istioctl`` on PATH the lab runs ``istioctl proxy-config KIND POD.NAMESPACE -o json``,
the tool a learner would use. Without it, it opens a port-forward to the proxy's admin
port (15000, only listening on the pod's loopback) with the client's websocket
``portforward`` and reads ``/config_dump`` (``/clusters?format=json`` for endpoints) over
plain HTTP/1.1. Either way, when the embedded backend's ``proxy_config_view`` exists the
result goes through it, so a notebook shows the same table on both backends.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client as k8s

from lab_app.cluster.kube.gateway import GATEWAY_NAMESPACE
from lab_app.cluster.kube.objects import meta, name_of, pod_ready
from lab_app.cluster.proxyconfig import ProxyConfigKind, proxy_config_view
from lab_app.errors import ConfigError, LabError

ADMIN_PORT = 15000
GATEWAY_SELECTOR = "istio=ingressgateway"
KINDS = ("routes", "clusters", "endpoints", "listeners")
DUMP_TYPES = {
    "routes": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
    "clusters": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
    "listeners": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"proxy_config kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def istioctl_args(istioctl: str, kind: str, pod: str, namespace: str) -> list[str]:
    return [istioctl, "proxy-config", check_kind(kind), f"{pod}.{namespace}", "-o", "json"]


def admin_path(kind: str) -> str:
    """The admin endpoint holding ``kind``; endpoints live in /clusters (as istioctl reads)."""
    return "/clusters?format=json" if check_kind(kind) == "endpoints" else "/config_dump"


def http_get(sock: socket.socket, path: str, timeout: float = 15.0) -> bytes:
    """GET ``path`` over an already connected socket (HTTP/1.1, ``Connection: close``).

    Envoy's admin only speaks HTTP/1.1 and may answer with chunked encoding;
    ``http.client`` parses that from any socket, including a port-forward's socketpair.
    """
    sock.settimeout(timeout)
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode("ascii"))
    response = http.client.HTTPResponse(sock, method="GET")
    try:
        response.begin()
        body = response.read()
    finally:
        response.close()
    if response.status != 200:
        raise LabError(f"Envoy admin answered {response.status} to GET {path}")
    return body


def dump_section(kind: str, dump: dict[str, Any]) -> Any:
    """The part of a config dump (or /clusters output) that ``kind`` is about."""
    if kind == "endpoints":
        return dump.get("cluster_statuses", dump)
    wanted = DUMP_TYPES[kind]
    for config in dump.get("configs") or []:
        if config.get("@type") == wanted:
            return config
    return {}


def istioctl_to_admin(kind: str, data: Any) -> dict[str, Any]:
    """istioctl's ``-o json`` list, rewrapped in the admin API's shape for the shared view."""
    items = data if isinstance(data, list) else [data]
    if kind == "endpoints":
        return {"cluster_statuses": items}
    if kind == "routes":
        section = {"dynamic_route_configs": [{"route_config": r} for r in items]}
    elif kind == "clusters":
        section = {"dynamic_active_clusters": [{"cluster": c} for c in items]}
    else:
        section = {
            "dynamic_listeners": [
                {"name": item.get("name", ""), "active_state": {"listener": item}} for item in items
            ]
        }
    return {"configs": [{"@type": DUMP_TYPES[kind], **section}]}


def view(kind: ProxyConfigKind, admin_data: dict[str, Any]) -> Any:
    """The same ``istioctl proxy-config`` view the embedded backend gives, from admin data."""
    return proxy_config_view(admin_data, kind)


def find_proxy_pod(core: k8s.CoreV1Api, proxy: str, namespace: str) -> tuple[str, str]:
    """(pod, namespace) of ``proxy``: ``gateway`` or ``NAME-sidecar`` / a pod name."""
    if proxy == "gateway":
        pods = core.list_namespaced_pod(
            GATEWAY_NAMESPACE, label_selector=GATEWAY_SELECTOR, _request_timeout=10
        ).items
        running = [p for p in pods if meta(p).deletion_timestamp is None and pod_ready(p)]
        if not running:
            raise LabError(
                f"no ready ingress gateway pod ({GATEWAY_SELECTOR}) in {GATEWAY_NAMESPACE}: "
                "is Istio installed? (docs/real-cluster.md)"
            )
        return name_of(running[0]), GATEWAY_NAMESPACE
    name = proxy.removeprefix("proxy/").removeprefix("pod/").removesuffix("-sidecar")
    return name, namespace


def run_istioctl(args: Sequence[str], timeout: float = 60.0) -> Any:
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[:400]}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise LabError(f"{' '.join(args)} did not print JSON") from None


def stats_path(filter: str | None) -> str:
    query = {"format": "json"}
    if filter:
        query["filter"] = filter
    return "/stats?" + urllib.parse.urlencode(query)


def parse_stats(data: Mapping[str, Any]) -> dict[str, int | float]:
    """Counters and gauges of ``/stats?format=json`` as ``{name: value}`` (no histograms)."""
    out: dict[str, int | float] = {}
    for item in data.get("stats") or []:
        value = item.get("value")
        if "name" in item and isinstance(value, int | float) and not isinstance(value, bool):
            out[item["name"]] = value
    return out


def proxy_stats(
    core: k8s.CoreV1Api, proxy: str, namespace: str, filter: str | None = None
) -> dict[str, int | float]:
    """Blocking: a proxy's Envoy stats (``filter``: Envoy's regex), via a port-forward."""
    pod, pod_namespace = find_proxy_pod(core, proxy, namespace)
    return parse_stats(admin_via_port_forward(core, pod, pod_namespace, stats_path(filter)))


def admin_via_port_forward(core: k8s.CoreV1Api, pod: str, namespace: str, path: str) -> Any:
    """GET ``path`` from the pod's Envoy admin through a websocket port-forward."""
    from kubernetes.stream import portforward

    forward = portforward(
        core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(ADMIN_PORT)
    )
    try:
        body = http_get(forward.socket(ADMIN_PORT), path)
    finally:
        forward.close()
    try:
        return json.loads(body)
    except ValueError:
        raise LabError(f"Envoy admin of {namespace}/{pod} did not answer JSON to {path}") from None


def proxy_config(
    core: k8s.CoreV1Api,
    kind: ProxyConfigKind,
    proxy: str,
    namespace: str,
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    istioctl: str | None = None,
) -> Any:
    """Blocking: the ``kind`` config of ``proxy`` (see the module docstring)."""
    check_kind(kind)
    pod, pod_namespace = find_proxy_pod(core, proxy, namespace)
    tool = istioctl if istioctl is not None else shutil.which("istioctl")
    if tool:
        args = istioctl_args(tool, kind, pod, pod_namespace)
        if context:
            args += ["--context", context]
        if kubeconfig:
            args += ["--kubeconfig", kubeconfig]
        data = run_istioctl(args)
        try:
            return proxy_config_view(istioctl_to_admin(kind, data), kind)
        except Exception:  # an istioctl whose JSON the shared view cannot read: show it raw
            return data
    return view(kind, admin_via_port_forward(core, pod, pod_namespace, admin_path(kind)))
