"""Where the load generator should send traffic on a real cluster.

Load must enter through the Istio ingress gateway (or, for the plain-Kubernetes
experiments, a Service's NodePort) so it is spread over every ready pod like real
traffic. ``kubectl port-forward`` to a Service is never used: it picks one pod and pins
every connection to it, which would hide exactly the effects the lab measures.

How the gateway's NodePort is reached depends on the cluster:
- kind: a node port is reachable from the host only if ``manifests/kind-cluster.yaml``
  maps it (``extraPortMappings``: containerPort = NodePort -> hostPort on listenAddress);
- minikube: ``minikube ip`` + NodePort;
- a LoadBalancer Service with an ingress IP/hostname: that address and the Service port;
- otherwise a node's address + NodePort.
Every function here takes its inputs as arguments (Service objects, file paths, a
command runner) so each rule is testable without a cluster.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client as k8s

from lab_app.cluster.kube.client import ContextInfo
from lab_app.cluster.kube.objects import meta, name_of
from lab_app.errors import LabError
from lab_app.paths import MANIFESTS_DIR

GATEWAY_ENV = "ZDLAB_GATEWAY_URL"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_SERVICE = "istio-ingressgateway"
GATEWAY_PORT_NAME = "http2"
GATEWAY_PORT = 80
KIND_CONFIG = MANIFESTS_DIR / "kind-cluster.yaml"

Runner = Callable[[Sequence[str]], str]


def run_command(args: Sequence[str]) -> str:
    """Run a helper program (``minikube ip``) and return its stdout; ``LabError`` on failure."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not on PATH (needed for: {' '.join(args)})") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)} did not answer within 30 s") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout.strip()


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    listen_address: str = "127.0.0.1"
    protocol: str = "TCP"


def kind_port_mappings(path: str | os.PathLike[str] = KIND_CONFIG) -> list[PortMapping]:
    """The ``extraPortMappings`` of every node in a kind cluster config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise LabError(f"cannot read the kind cluster config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise LabError(f"{path} is not valid YAML: {exc}") from None
    mappings: list[PortMapping] = []
    for node in (config or {}).get("nodes") or []:
        for mapping in (node or {}).get("extraPortMappings") or []:
            try:
                mappings.append(
                    PortMapping(
                        int(mapping["containerPort"]),
                        int(mapping.get("hostPort") or mapping["containerPort"]),
                        str(mapping.get("listenAddress") or "127.0.0.1"),
                        str(mapping.get("protocol") or "TCP").upper(),
                    )
                )
            except (KeyError, TypeError, ValueError):
                raise LabError(
                    f"{path}: extraPortMappings entry {mapping!r} needs an integer containerPort"
                ) from None
    return mappings


def kind_host_address(
    node_port: int, path: str | os.PathLike[str] = KIND_CONFIG, what: str = "the NodePort"
) -> tuple[str, int]:
    """(host, port) on which kind exposes ``node_port`` of its node, per the config file."""
    mappings = kind_port_mappings(path)
    for mapping in mappings:
        if mapping.container_port == node_port and mapping.protocol == "TCP":
            host = mapping.listen_address
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return host, mapping.host_port
    mapped = ", ".join(f"{m.container_port}->{m.host_port}" for m in mappings) or "none"
    raise LabError(
        f"{what} {node_port} is not mapped to the host by {path} (mapped: {mapped}); "
        "scripts/cluster-up.sh pins the gateway's NodePort to the mapped one, or add an "
        "extraPortMappings entry and recreate the cluster"
    )


def _port(service: k8s.V1Service, name: str | None, number: int | None) -> k8s.V1ServicePort:
    ports = (service.spec.ports if service.spec else None) or []
    for port in ports:
        if name and port.name == name:
            return port
    for port in ports:
        if number is not None and port.port == number:
            return port
    if len(ports) == 1 and name is None:
        return ports[0]
    names = ", ".join(f"{p.name or '-'}:{p.port}" for p in ports) or "none"
    wanted = name or number
    raise LabError(
        f"service {meta(service).namespace}/{name_of(service)} has no port {wanted} "
        f"(ports: {names})"
    )


def load_balancer_address(service: k8s.V1Service) -> str | None:
    """The first ingress IP (or hostname) a load balancer assigned, if any."""
    ingress = (
        service.status.load_balancer.ingress
        if service.status and service.status.load_balancer
        else None
    )
    for entry in ingress or []:
        if entry.ip or entry.hostname:
            return entry.ip or entry.hostname
    return None


def _url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}" if port == 80 else f"http://{host}:{port}"


def url_for_service(
    service: k8s.V1Service,
    context: ContextInfo,
    *,
    port_name: str | None = None,
    port_number: int | None = None,
    kind_config: str | os.PathLike[str] = KIND_CONFIG,
    runner: Runner = run_command,
    node_address: Callable[[], str | None] = lambda: None,
) -> str:
    """A URL on this machine that reaches ``service`` through its NodePort or load balancer."""
    port = _port(service, port_name, port_number)
    where = f"service {meta(service).namespace}/{name_of(service)} port {port.port}"
    node_port = port.node_port
    svc_type = (service.spec.type if service.spec else None) or "ClusterIP"
    if context.flavour == "kind":
        if not node_port:
            raise LabError(f"{where} has no NodePort (type {svc_type}); kind reaches only those")
        return _url(*kind_host_address(node_port, kind_config, f"NodePort of {where}"))
    if context.flavour == "minikube":
        if not node_port:
            raise LabError(f"{where} has no NodePort (type {svc_type})")
        return _url(runner(["minikube", "ip", "-p", context.cluster or "minikube"]), node_port)
    balancer = load_balancer_address(service)
    if balancer:
        return _url(balancer, port.port)
    if node_port:
        address = node_address()
        if address:
            return _url(address, node_port)
    raise LabError(
        f"{where} is not reachable from outside the cluster (type {svc_type}, no load balancer "
        f"address, no node address): set {GATEWAY_ENV} or pass gateway_url=..."
    )


def node_address(core: k8s.CoreV1Api) -> str | None:
    """The first node's ExternalIP, else its InternalIP (reachable on most local clusters)."""
    nodes = core.list_node(_request_timeout=10).items or []
    for wanted in ("ExternalIP", "InternalIP"):
        for node in nodes:
            for address in (node.status.addresses if node.status else None) or []:
                if address.type == wanted and address.address:
                    return address.address
    return None


def gateway_url(
    core: k8s.CoreV1Api,
    context: ContextInfo,
    *,
    explicit: str | None = None,
    kind_config: str | os.PathLike[str] = KIND_CONFIG,
    runner: Runner = run_command,
) -> str:
    """Explicit option > ``$ZDLAB_GATEWAY_URL`` > the istio-ingressgateway Service."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get(GATEWAY_ENV):
        return os.environ[GATEWAY_ENV].rstrip("/")
    from kubernetes.client.exceptions import ApiException

    try:
        service = core.read_namespaced_service(
            GATEWAY_SERVICE, GATEWAY_NAMESPACE, _request_timeout=10
        )
    except ApiException as exc:
        if exc.status == 404:
            raise LabError(
                f"no Service {GATEWAY_NAMESPACE}/{GATEWAY_SERVICE}: is Istio installed? "
                "(istioctl install --set profile=demo -y, see docs/real-cluster.md)"
            ) from None
        raise LabError(
            f"cannot read Service {GATEWAY_NAMESPACE}/{GATEWAY_SERVICE}: HTTP {exc.status}"
        ) from None
    return url_for_service(
        service,
        context,
        port_name=GATEWAY_PORT_NAME,
        port_number=GATEWAY_PORT,
        kind_config=kind_config,
        runner=runner,
        node_address=lambda: node_address(core),
    )


def service_url(
    core: k8s.CoreV1Api,
    namespace: str,
    service: str,
    context: ContextInfo,
    *,
    kind_config: str | os.PathLike[str] = KIND_CONFIG,
    runner: Runner = run_command,
) -> str:
    """The NodePort (or load balancer) address of ``service``; never a port-forward."""
    from kubernetes.client.exceptions import ApiException

    from lab_app.cluster.kube.client import api_error
    from lab_app.errors import NotFoundError

    try:
        svc = core.read_namespaced_service(service, namespace, _request_timeout=10)
    except ApiException as exc:
        if exc.status == 404:
            raise NotFoundError(f"service/{service} not found in namespace {namespace!r}") from None
        raise api_error(exc, f"reading service/{service}") from None
    svc_type = (svc.spec.type if svc.spec else None) or "ClusterIP"
    ports = (svc.spec.ports if svc.spec else None) or []
    if svc_type not in ("NodePort", "LoadBalancer") or not any(p.node_port for p in ports):
        raise LabError(
            f"service/{service} is {svc_type}: on a real cluster, load without Istio needs "
            "a NodePort Service reachable from this machine (kubectl port-forward would pin "
            "one pod). Make it type NodePort with a nodePort your cluster maps to the host "
            "(docs/real-cluster.md), or run the plain-Kubernetes experiments on the "
            "embedded backend"
        )
    named = next((p for p in ports if p.name == "http"), ports[0])
    return url_for_service(
        svc,
        context,
        port_name=named.name,
        port_number=named.port,
        kind_config=kind_config,
        runner=runner,
        node_address=lambda: node_address(core),
    )
