"""``KubeCluster``: the lab's ``Cluster`` interface on a real Kubernetes cluster with Istio.

Every call that talks to the API server runs in a worker thread (``asyncio.to_thread``),
because the ``kubernetes`` client blocks and the notebook's event loop must keep its
load generator and live charts going meanwhile. Resources are applied with server-side
apply under the field manager ``zdlab``; rollouts are awaited with a watch; weights move
only to subsets that already exist (make before break); events come from watches on
pods, EndpointSlices, Deployments and core Events, mapped to the same ``EventKind``
values as the embedded backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from lab_app.cluster.base import ManifestSource, PodInfo
from lab_app.cluster.events import Event, EventHub, EventKind
from lab_app.cluster.kube import gateway as gateway_mod
from lab_app.cluster.kube import images as images_mod
from lab_app.cluster.kube import proxy as proxy_mod
from lab_app.cluster.kube.client import (
    KubeClients,
    api_error,
    connect_clients,
    json_object,
    stop_watch,
)
from lab_app.cluster.kube.eventmap import (
    CoreEventMapper,
    DeploymentTracker,
    EndpointTracker,
    PodTracker,
)
from lab_app.cluster.kube.objects import SIDECAR, app_container
from lab_app.cluster.kube.pods import label_selector, pod_info
from lab_app.cluster.kube.resources import (
    APPLY_ORDER,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    ApiRequest,
    ResourceType,
    apply_request,
    delete_request,
    object_name,
    parse_ref,
    patch_request,
    ref,
    resource_type,
    type_for_kind,
)
from lab_app.cluster.kube.rollout import wait_for_rollout
from lab_app.cluster.kube.settle import gateway_bound, rejected_updates, settle_problem
from lab_app.cluster.kube.watches import WatchLoop
from lab_app.cluster.kube.weights import validate_weights, weights_patch
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.errors import ConfigError, ConfigNotSettledError, ConfigRejectedError, LabError
from lab_app.manifests.names import DEFAULT_SERVICE
from lab_app.paths import MANIFESTS_DIR

INJECTION_LABEL = {"istio-injection": "enabled"}
NAMESPACE_MANIFEST = MANIFESTS_DIR / "namespace.yaml"


def _load_documents(source: Any) -> list[tuple[dict[str, Any], str]]:
    """Validated objects with their origin, through the lab's manifest loader."""
    from lab_app.manifests import load_documents

    return [(m.obj, f"{m.source}#{m.index}") for m in load_documents(source)]


class KubeCluster:
    """A namespace of a real cluster, driven through the Kubernetes API (see module doc)."""

    backend = "kubernetes"

    def __init__(
        self,
        clients: KubeClients,
        namespace: str = "zdlab",
        *,
        server_version: str = "",
        gateway_url: str | None = None,
        kind_config: str | os.PathLike[str] = gateway_mod.KIND_CONFIG,
        runner: gateway_mod.Runner = gateway_mod.run_command,
        kubeconfig: str | None = None,
        istioctl: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.clients = clients
        self.context = clients.context
        self.server_version = server_version
        self._explicit_gateway = gateway_url
        self._gateway_url: str | None = None
        self._kind_config = kind_config
        self._runner = runner
        self._kubeconfig = kubeconfig
        self._istioctl = istioctl
        self._hub = EventHub()
        self._pods = PodTracker()
        self._watches: list[WatchLoop] = []
        self._waits: set[k8s_watch.Watch] = set()
        self._waits_lock = threading.Lock()
        self._wait_stops: set[threading.Event] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        namespace: str = "zdlab",
        context: str | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        gateway_url: str | None = None,
        *,
        connect_timeout: float = 5.0,
        watch: bool = True,
        create_namespace: bool = True,
        kind_config: str | os.PathLike[str] = gateway_mod.KIND_CONFIG,
        runner: gateway_mod.Runner = gateway_mod.run_command,
        istioctl: str | None = None,
        **unknown: Any,
    ) -> KubeCluster:
        """Connect (kubeconfig, or in-cluster), check the API answers, start the watches.

        Raises ``LabError`` within about ``connect_timeout`` seconds when the API server
        cannot be reached or rejects the credentials; no credential is ever in the message.
        """
        if unknown:
            raise ConfigError(
                f"KubeCluster.start() got unknown option(s) {', '.join(sorted(unknown))}; it "
                "accepts namespace, context, kubeconfig, gateway_url, connect_timeout, watch, "
                "create_namespace, kind_config, istioctl"
            )
        if not namespace:
            raise ConfigError("namespace must not be empty")
        clients, version = await asyncio.to_thread(
            connect_clients, kubeconfig, context, connect_timeout
        )
        cluster = cls(
            clients,
            namespace,
            server_version=version,
            gateway_url=gateway_url,
            kind_config=kind_config,
            runner=runner,
            kubeconfig=str(kubeconfig) if kubeconfig else None,
            istioctl=istioctl,
        )
        try:
            if create_namespace:
                await asyncio.to_thread(cluster._ensure_namespace)
            if watch:
                await asyncio.to_thread(cluster._start_watches)
        except BaseException:
            await cluster.close()
            raise
        return cluster

    def _ensure_namespace(self) -> None:
        """Create the lab's namespace if it does not exist yet, labelled like
        ``manifests/namespace.yaml`` (Istio injection, Pod Security level)."""
        try:
            self.clients.core.read_namespace(self.namespace, _request_timeout=10)
            return
        except ApiException as exc:
            if exc.status == 403:  # may not read namespaces (namespaced RBAC): assume it exists
                return
            if exc.status != 404:
                raise api_error(exc, f"reading namespace {self.namespace!r}") from None
        labels = dict(INJECTION_LABEL)
        if NAMESPACE_MANIFEST.is_file():  # same labels as manifests/namespace.yaml (PSA too)
            for obj, _ in _load_documents(NAMESPACE_MANIFEST):
                if obj.get("kind") == "Namespace":
                    labels = dict((obj.get("metadata") or {}).get("labels") or labels)
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": labels},
        }
        self._execute(apply_request(body, self.namespace), f"namespace/{self.namespace}")

    def _start_watches(self, ready_timeout: float = 15.0) -> None:
        clients, ns, hub = self.clients, self.namespace, self._hub
        self._watches = [
            WatchLoop("pods", clients.core.list_namespaced_pod, ns, self._pods, hub),
            WatchLoop(
                "endpointslices",
                clients.discovery.list_namespaced_endpoint_slice,
                ns,
                EndpointTracker(),
                hub,
            ),
            WatchLoop(
                "deployments", clients.apps.list_namespaced_deployment, ns, DeploymentTracker(), hub
            ),
            WatchLoop(
                "events", clients.core.list_namespaced_event, ns, CoreEventMapper(self._pods), hub
            ),
        ]
        for loop in self._watches:
            loop.start()
        deadline = time.monotonic() + ready_timeout
        for loop in self._watches:  # first lists done: later changes are all reported
            loop.ready.wait(max(0.0, deadline - time.monotonic()))

    async def close(self) -> None:
        """Stop the watches (their sockets are shut, so this is prompt) and the client."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for task in list(self._tasks):
            with contextlib.suppress(RuntimeError):  # its loop is gone (closed at exit)
                task.cancel()
        mine = [t for t in self._tasks if t.get_loop() is loop]
        if mine:
            await asyncio.wait(mine, timeout=15)
        for watch_loop in self._watches:
            watch_loop.stop()
        for stop in list(self._wait_stops):
            stop.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # rollout waits in progress: interrupt them
            with self._waits_lock:
                waits = list(self._waits)
            if not waits:
                break
            for watcher in waits:
                stop_watch(watcher)
            await asyncio.sleep(0.05)

        def join() -> None:
            for watch_loop in self._watches:
                watch_loop.join(10.0)

        await asyncio.to_thread(join)
        self._hub.close()
        self.clients.close()

    async def __aenter__(self) -> KubeCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this KubeCluster is closed; connect() again")

    # --- requests ----------------------------------------------------------------------------
    def _call(self, request: ApiRequest) -> Any:
        api = getattr(self.clients, request.api)
        return getattr(api, request.method)(**request.kwargs, _request_timeout=30)

    def _execute(self, request: ApiRequest, what: str) -> Any:
        try:
            return self._call(request)
        except ApiException as exc:
            if exc.status == 404 and request.api == "custom":
                group = request.kwargs.get("group", "")
                raise LabError(
                    f"{what}: the API server does not serve {request.kwargs.get('plural')}."
                    f"{group} (is Istio installed? docs/real-cluster.md) or it does not exist"
                ) from None
            raise api_error(exc, what) from None

    def _sorted(
        self, source: ManifestSource, reverse: bool = False
    ) -> list[tuple[dict[str, Any], ResourceType, str]]:
        items = []
        for obj, origin in _load_documents(source):
            items.append((obj, resource_type(obj, origin), origin))
        items.sort(key=lambda item: APPLY_ORDER.get(item[1].kind, 99), reverse=reverse)
        return items

    async def apply(self, source: ManifestSource, *, force: bool = True) -> list[str]:
        """Server-side apply as field manager ``zdlab``, in dependency order
        (DestinationRule before VirtualService).

        ``force`` (the default, ``kubectl apply --server-side --force-conflicts``) takes
        over fields another manager set: the lab owns its namespace and its manifests are
        the truth an experiment starts from, so a ``kubectl edit`` or ``kubectl scale``
        left over from a previous exercise must be overwritten, not block the next run.
        ``force=False`` refuses instead: ``LabError`` naming each contested field and its
        manager (the server's 409 Conflict).
        """
        self._check_open()

        def run() -> list[str]:
            applied = []
            for obj, rt, origin in self._sorted(source):  # validation can take a moment
                name = object_name(obj, origin)
                request = apply_request(obj, self.namespace, origin, force=force)
                self._execute(request, f"apply {origin}")
                applied.append(ref(rt, name))
            return applied

        return await asyncio.to_thread(run)

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete by manifest or ``kind/name``; objects already gone are skipped."""
        self._check_open()
        parsed = parse_ref(source) if isinstance(source, str) else None

        def run() -> list[str]:
            targets: list[tuple[ResourceType, str, str]] = []
            if parsed is not None:
                targets.append((parsed[0], parsed[1], self.namespace))
            else:
                for obj, rt, origin in self._sorted(source, reverse=True):
                    namespace = (obj.get("metadata") or {}).get("namespace") or self.namespace
                    targets.append((rt, object_name(obj, origin), namespace))
            deleted = []
            for rt, name, namespace in targets:
                try:
                    self._call(delete_request(rt, name, namespace))
                except ApiException as exc:
                    if exc.status == 404:  # already gone (or the kind is not served)
                        continue
                    raise api_error(exc, f"delete {ref(rt, name)}") from None
                deleted.append(ref(rt, name))
            return deleted

        return await asyncio.to_thread(run)

    def _read_deployment(self, name: str) -> k8s.V1Deployment:
        try:
            return self.clients.apps.read_namespaced_deployment(
                name, self.namespace, _request_timeout=10
            )
        except ApiException as exc:
            if exc.status == 404:
                raise LabError(
                    f"deployment/{name} not found in namespace {self.namespace!r}"
                ) from None
            raise api_error(exc, f"reading deployment/{name}") from None

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """``kubectl set image``: a strategic-merge patch of one container's image."""
        self._check_open()
        if not image or any(c.isspace() for c in image):
            raise ConfigError(f"image {image!r} is not an image reference")

        def run() -> None:
            current = self._read_deployment(deployment)
            template = current.spec.template if current.spec else None
            spec = (template.spec if template else None) or k8s.V1PodSpec(containers=[])
            names = [c.name for c in spec.containers or []]
            chosen = container
            if chosen is None:
                app = app_container(k8s.V1Pod(spec=spec))
                chosen = app.name if app else None
            if chosen not in names:
                raise LabError(
                    f"deployment/{deployment} has no container {chosen!r} (containers: "
                    f"{', '.join(names)})"
                )
            body = {
                "spec": {"template": {"spec": {"containers": [{"name": chosen, "image": image}]}}}
            }
            rt = type_for_kind("Deployment")
            self._execute(
                patch_request(rt, deployment, self.namespace, body, STRATEGIC_MERGE_PATCH),
                f"set image of deployment/{deployment}",
            )

        await asyncio.to_thread(run)

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """Until kubectl would say "successfully rolled out"; ``RolloutTimeoutError`` else."""
        self._check_open()
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, not {timeout}")
        stop = threading.Event()
        current: list[k8s_watch.Watch] = []

        def on_watch(watcher: k8s_watch.Watch | None) -> None:
            with self._waits_lock:
                for old in current:
                    self._waits.discard(old)
                current.clear()
                if watcher is not None:
                    current.append(watcher)
                    self._waits.add(watcher)

        task = asyncio.ensure_future(
            asyncio.to_thread(
                wait_for_rollout,
                self.clients.apps,
                self.namespace,
                deployment,
                timeout,
                stop=stop,
                on_watch=on_watch,
            )
        )
        self._wait_stops.add(stop)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            stop.set()
            deadline = time.monotonic() + 10
            while not task.done() and time.monotonic() < deadline:
                with self._waits_lock:  # repeated: a watch may not have had its socket yet
                    for watcher in current:
                        stop_watch(watcher)
                await asyncio.wait({task}, timeout=0.05)
            with contextlib.suppress(BaseException):
                if task.done():
                    task.result()
            raise
        except ApiException as exc:
            raise api_error(exc, f"watching deployment/{deployment}") from None
        finally:
            self._wait_stops.discard(stop)

    async def scale(self, deployment: str, replicas: int) -> None:
        """Patch the Deployment's ``scale`` subresource (what ``kubectl scale`` does)."""
        self._check_open()
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ConfigError(f"replicas must be an integer >= 0, not {replicas!r}")

        def run() -> None:
            try:
                self.clients.apps.patch_namespaced_deployment_scale(
                    deployment,
                    self.namespace,
                    {"spec": {"replicas": replicas}},
                    field_manager="zdlab",
                    _content_type=MERGE_PATCH,
                    _request_timeout=30,
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise LabError(
                        f"deployment/{deployment} not found in namespace {self.namespace!r}"
                    ) from None
                raise api_error(exc, f"scaling deployment/{deployment}") from None

        await asyncio.to_thread(run)

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Set route weights by subset; refuses a positive weight to a subset not yet defined."""
        self._check_open()
        checked = validate_weights(weights)
        vs_type = type_for_kind("VirtualService")
        dr_type = type_for_kind("DestinationRule")

        def run() -> dict[str, Any]:
            custom = self.clients.custom
            try:
                current = json_object(
                    custom.get_namespaced_custom_object(
                        vs_type.group,
                        vs_type.version,
                        self.namespace,
                        vs_type.plural,
                        virtualservice,
                        _request_timeout=10,
                    )
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise LabError(
                        f"virtualservice/{virtualservice} not found in namespace "
                        f"{self.namespace!r} (or Istio is not installed)"
                    ) from None
                raise api_error(exc, f"reading virtualservice/{virtualservice}") from None
            try:
                rules = json_object(
                    custom.list_namespaced_custom_object(
                        dr_type.group,
                        dr_type.version,
                        self.namespace,
                        dr_type.plural,
                        _request_timeout=10,
                    )
                ).get("items", [])
            except ApiException as exc:
                raise api_error(exc, "listing destinationrules") from None
            patch = weights_patch(current, rules, checked, self.namespace)
            try:
                custom.patch_namespaced_custom_object(
                    vs_type.group,
                    vs_type.version,
                    self.namespace,
                    vs_type.plural,
                    virtualservice,
                    patch,
                    field_manager="zdlab",
                    _content_type=MERGE_PATCH,
                    _request_timeout=30,
                )
            except ApiException as exc:
                if exc.status == 409:
                    raise LabError(
                        f"virtualservice/{virtualservice} was changed by someone else while "
                        "the weights were computed; call set_weights again"
                    ) from None
                raise api_error(exc, f"patching virtualservice/{virtualservice}") from None
            return patch

        await asyncio.to_thread(run)
        changed_at = time.time()
        shown = " / ".join(f"{s} {w}" for s, w in checked.items())
        self._hub.publish(
            Event(
                EventKind.WEIGHTS_CHANGED,
                f"virtualservice/{virtualservice}",
                shown,
                changed_at,
                {"weights": dict(checked)},
            )
        )
        self._confirm_push("weights", changed_at, {"virtualservice": virtualservice})

    def _confirm_push(self, reason: str, changed_at: float, data: dict[str, Any]) -> None:
        """In the background, watch the gateway's Envoy take the change: ConfigPushed."""
        task = asyncio.get_running_loop().create_task(
            self._await_push(reason, changed_at, data), name=f"zdlab-push-{reason}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_push(
        self, reason: str, changed_at: float, data: dict[str, Any], timeout: float = 30.0
    ) -> None:
        """Poll the gateway's routes until they match; the event's time is when seen, so its
        lag includes the poll period (a few hundred ms), unlike the embedded backend's."""
        deadline = time.monotonic() + timeout
        problem: str | None = "not checked"
        while time.monotonic() < deadline and not self._closed:
            problem = await asyncio.to_thread(self._settle_problem, False, True)
            if problem is None:
                now = time.time()
                lag_ms = (now - changed_at) * 1000
                self._hub.publish(
                    Event(
                        EventKind.CONFIG_PUSHED,
                        "proxy/gateway",
                        f"{reason}: seen in the gateway {lag_ms:.0f} ms after the change",
                        now,
                        {
                            **data,
                            "reason": reason,
                            "lag_ms": round(lag_ms, 1),
                            "changed_at": changed_at,
                        },
                    )
                )
                return
            await asyncio.sleep(0.2)
        if not self._closed:
            self._hub.publish(
                Event(
                    EventKind.NOTE,
                    "proxy/gateway",
                    f"{reason}: not seen in the gateway within {timeout:g} s ({problem})",
                    data={**data, "reason": reason},
                )
            )

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Until the ingress gateway routes every gateway-bound VirtualService as its spec
        says, with a healthy endpoint behind each route (see ``settle``); polls the
        gateway's real Envoy config every half second. ``ConfigNotSettledError`` (a
        ``TimeoutError``) after ``timeout`` seconds, naming what is still missing;
        ``ConfigRejectedError`` when the gateway's Envoy rejected (NACKed) the latest update
        of a resource (its config dump's ``error_state``), naming it and Envoy's reason."""
        self._check_open()
        deadline = time.monotonic() + timeout
        while True:
            problem = await asyncio.to_thread(self._settle_problem, True, False)
            rejected = await asyncio.to_thread(self._gateway_rejections)
            if rejected:
                raise ConfigRejectedError(
                    "the latest config push was rejected by proxy/gateway: "
                    + "; ".join(f"{name}: {why}" for name, why in rejected.items())
                    + " -- the gateway keeps running its previous config",
                    rejections={"proxy/gateway": "; ".join(rejected.values())},
                )
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise ConfigNotSettledError(
                    f"Istio's config did not reach the gateway within {timeout:g} s: {problem}"
                )
            await asyncio.sleep(0.5)

    def _gateway_rejections(self) -> dict[str, str]:
        """Blocking: resources the gateway's Envoy NACKed last (``{}`` when it cannot tell)."""
        try:
            pod, pod_namespace = proxy_mod.find_proxy_pod(
                self.clients.core, "gateway", self.namespace
            )
            dump = proxy_mod.admin_via_port_forward(
                self.clients.core, pod, pod_namespace, "/config_dump"
            )
        except Exception:  # no gateway, no Istio, no port-forward: nothing seen rejected
            return {}
        return rejected_updates(dump) if isinstance(dump, dict) else {}

    def _settle_problem(self, endpoints: bool = True, strict: bool = False) -> str | None:
        """``None`` when the gateway holds the config. ``strict``: "cannot tell" (no Istio,
        nothing routed, no readable view) is a problem too, not a success."""
        unknown = "the gateway's config cannot be read" if strict else None
        vs_type = type_for_kind("VirtualService")
        try:
            listing = json_object(
                self.clients.custom.list_namespaced_custom_object(
                    vs_type.group,
                    vs_type.version,
                    self.namespace,
                    vs_type.plural,
                    _request_timeout=10,
                )
            )
        except ApiException as exc:
            if exc.status == 404:  # Istio not installed: nothing routes through a gateway
                return unknown
            return f"HTTP {exc.status} listing virtualservices"
        virtualservices = [vs for vs in listing.get("items", []) if gateway_bound(vs)]
        if not virtualservices:
            return unknown

        def rows(kind: str) -> list[dict[str, Any]] | None:
            view = proxy_mod.proxy_config(
                self.clients.core,
                kind,
                "gateway",
                self.namespace,
                context=self._context_arg(),
                kubeconfig=self._kubeconfig,
                istioctl=self._istioctl,
            )
            return getattr(view, "rows", None)

        try:
            routes = rows("routes")
            if routes is None:  # no shared view to read Envoy's routes with: cannot tell
                return unknown
            problem = settle_problem(virtualservices, routes, None, self.namespace)
            if problem is None and endpoints:
                endpoint_rows = rows("endpoints")
                problem = settle_problem(
                    virtualservices, routes, endpoint_rows or [], self.namespace
                )
        except LabError as exc:  # e.g. the gateway pod is not ready yet
            return str(exc)
        except ApiException as exc:
            return f"HTTP {exc.status} reading the gateway's config"
        return problem

    def _context_arg(self) -> str | None:
        return self.context.name if self.context.flavour != "in-cluster" else None

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        self._check_open()

        def run() -> list[PodInfo]:
            try:
                listing = self.clients.core.list_namespaced_pod(
                    self.namespace, label_selector=label_selector(selector), _request_timeout=15
                )
            except ApiException as exc:
                raise api_error(exc, f"listing pods in {self.namespace!r}") from None
            return sorted((pod_info(p) for p in listing.items or []), key=lambda p: p.name)

        return await asyncio.to_thread(run)

    # --- events ------------------------------------------------------------------------------
    def events(self, since: float | None = None) -> list[Event]:
        return self._hub.events(since)

    def subscribe(self) -> AsyncIterator[Event]:
        """Events from now on, until ``close()``. Registered when called (not at the first
        iteration), so nothing published between this call and the first ``async for``
        step is missed."""
        return self._hub.subscribe(since=time.time())

    def note(self, message: str, obj: str = "lab", **data: Any) -> Event:
        """Add a hand-written marker (e.g. "load started") to the timeline."""
        event = Event(EventKind.NOTE, obj, message, data=data)
        self._hub.publish(event)
        return event

    # --- addresses ---------------------------------------------------------------------------
    def gateway_url(self) -> str:
        """Explicit > ``$ZDLAB_GATEWAY_URL`` > the istio-ingressgateway Service (cached)."""
        if self._gateway_url is None:
            self._gateway_url = gateway_mod.gateway_url(
                self.clients.core,
                self.context,
                explicit=self._explicit_gateway,
                kind_config=self._kind_config,
                runner=self._runner,
            )
        return self._gateway_url

    def service_url(self, service: str = DEFAULT_SERVICE) -> str:
        """The NodePort (or load balancer) address of ``service``; never a port-forward."""
        try:
            svc = self.clients.core.read_namespaced_service(
                service, self.namespace, _request_timeout=10
            )
        except ApiException as exc:
            if exc.status == 404:
                raise LabError(
                    f"service/{service} not found in namespace {self.namespace!r}"
                ) from None
            raise api_error(exc, f"reading service/{service}") from None
        svc_type = (svc.spec.type if svc.spec else None) or "ClusterIP"
        has_node_port = any(p.node_port for p in (svc.spec.ports if svc.spec else None) or [])
        if svc_type not in ("NodePort", "LoadBalancer") or not has_node_port:
            raise LabError(
                f"service/{service} is {svc_type}: on a real cluster, load without Istio needs "
                "a NodePort Service reachable from this machine (kubectl port-forward would pin "
                "one pod). Make it type NodePort with a nodePort your cluster maps to the host "
                "(docs/real-cluster.md), or run the plain-Kubernetes experiments on the "
                "embedded backend"
            )
        ports = (svc.spec.ports if svc.spec else None) or []
        named = next((p for p in ports if p.name == "http"), ports[0])
        return gateway_mod.url_for_service(
            svc,
            self.context,
            port_name=named.name,
            port_number=named.port,
            kind_config=self._kind_config,
            runner=self._runner,
            node_address=lambda: gateway_mod.node_address(self.clients.core),
        )

    # --- inspection --------------------------------------------------------------------------
    async def proxy_config(self, kind: ProxyConfigKind = "routes", proxy: str = "gateway") -> Any:
        self._check_open()
        proxy_mod.check_kind(kind)
        return await asyncio.to_thread(
            proxy_mod.proxy_config,
            self.clients.core,
            kind,
            proxy,
            self.namespace,
            context=self._context_arg(),
            kubeconfig=self._kubeconfig,
            istioctl=self._istioctl,
        )

    async def proxy_stats(
        self, proxy: str = "gateway", filter: str | None = None
    ) -> dict[str, int | float]:
        """A proxy's Envoy stats (``/stats?filter=REGEX``), e.g. ``upstream_rq_active``."""
        self._check_open()
        return await asyncio.to_thread(
            proxy_mod.proxy_stats, self.clients.core, proxy, self.namespace, filter
        )

    async def logs(self, pod: str, tail: int | None = None) -> str:
        self._check_open()
        name = pod.removeprefix("pod/")

        def run() -> str:
            try:
                current = self.clients.core.read_namespaced_pod(
                    name, self.namespace, _request_timeout=10
                )
                app = app_container(current)
                kwargs: dict[str, Any] = {"_request_timeout": 30}
                if app is not None and app.name != SIDECAR:
                    kwargs["container"] = app.name
                if tail is not None:
                    kwargs["tail_lines"] = int(tail)
                return str(
                    self.clients.core.read_namespaced_pod_log(name, self.namespace, **kwargs)
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise LabError(
                        f"pod/{name} not found in namespace {self.namespace!r}"
                    ) from None
                raise api_error(exc, f"reading the log of pod/{name}") from None

        return await asyncio.to_thread(run)

    async def build_image(self, version: str, **options: Any) -> str:
        """Build ``zdlab/demo:<version>`` and load it into the kind/minikube node.

        Options: ``tool`` (path of docker/podman/nerdctl), ``load`` (default True),
        ``repo_root``, ``echo`` (progress printer, default ``print``).
        """
        allowed = {"tool", "load", "repo_root", "echo"}
        if set(options) - allowed:
            raise ConfigError(
                f"build_image() got unknown option(s) {', '.join(sorted(set(options) - allowed))}"
            )
        echo: Callable[[str], None] = options.get("echo") or (lambda s: print(s, flush=True))
        context = self.context if options.get("load", True) else None
        return await asyncio.to_thread(
            images_mod.build_and_load,
            version,
            context,
            repo_root=Path(options["repo_root"]) if options.get("repo_root") else None,
            tool=options.get("tool"),
            echo=echo,
        )

    def __repr__(self) -> str:
        return (
            f"KubeCluster(context={self.context.name!r}, server={self.context.server!r}, "
            f"namespace={self.namespace!r})"
        )
