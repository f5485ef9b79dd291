"""``KubeCluster``: the lab's ``Cluster`` interface on a real Kubernetes cluster with Istio.

A thin facade: each method checks its arguments, then runs the blocking work of a small
module in a worker thread (``asyncio.to_thread``), because the ``kubernetes`` client
blocks and the notebook's event loop must keep its load generator and live charts going
meanwhile. Resources are applied with server-side apply under the field manager ``zdlab``
(``ops``); Deployments are changed and read like kubectl does (``deployments``); rollouts
are awaited with a watch (``rollout``); weights move only to subsets that already exist
(``traffic``, ``weights``); the gateway's Envoy is read to tell when config has settled
(``gatewaysync``); events come from watches on pods, EndpointSlices, Deployments and core
Events (``watches``, ``eventmap``), mapped to the same ``EventKind`` values as the embedded
backend. The lab's namespace is created at connect and deleted at close (``namespace``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from lab_app.cluster.base import ManifestSource, PodInfo
from lab_app.cluster.events import Event, EventHub, EventKind
from lab_app.cluster.kube import deployments as deployments_mod
from lab_app.cluster.kube import gateway as gateway_mod
from lab_app.cluster.kube import images as images_mod
from lab_app.cluster.kube import namespace as namespace_mod
from lab_app.cluster.kube import proxy as proxy_mod
from lab_app.cluster.kube.client import KubeClients, connect_clients
from lab_app.cluster.kube.eventmap import PodTracker
from lab_app.cluster.kube.gatewaysync import GatewaySync
from lab_app.cluster.kube.ops import apply_all, delete_all, load_documents
from lab_app.cluster.kube.pods import list_pods, read_log
from lab_app.cluster.kube.rollout import RolloutWaits
from lab_app.cluster.kube.traffic import set_weights as patch_weights
from lab_app.cluster.kube.watches import WatchLoop, start_namespace_watches
from lab_app.cluster.kube.weights import validate_weights
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.errors import ConfigError, LabError
from lab_app.manifests.names import DEFAULT_SERVICE

OPTIONS = (
    "namespace, context, kubeconfig, gateway_url, connect_timeout, watch, create_namespace, "
    "keep_namespace, kind_config, istioctl"
)


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
        keep_namespace: bool = False,
    ) -> None:
        self.namespace = namespace
        self.clients = clients
        self.context = clients.context
        self.server_version = server_version
        self.keep_namespace = keep_namespace
        self._owns_namespace = False  # set by start(): the lab created it (namespace doc)
        self._explicit_gateway = gateway_url
        self._gateway_url: str | None = None
        self._kind_config = kind_config
        self._runner = runner
        self._kubeconfig = kubeconfig
        self._istioctl = istioctl
        self._hub = EventHub()
        self._pods = PodTracker()
        self._watches: list[WatchLoop] = []
        self._rollouts = RolloutWaits()
        self._closed = False
        self._gateway_sync = GatewaySync(
            clients,
            namespace,
            self._hub,
            context=self._context_arg(),
            kubeconfig=kubeconfig,
            istioctl=istioctl,
            closed=lambda: self._closed,
        )

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
        keep_namespace: bool = False,
        kind_config: str | os.PathLike[str] = gateway_mod.KIND_CONFIG,
        runner: gateway_mod.Runner = gateway_mod.run_command,
        istioctl: str | None = None,
        **unknown: Any,
    ) -> KubeCluster:
        """Connect (kubeconfig, or in-cluster), check the API answers, create the namespace
        if missing (labelled like ``manifests/namespace.yaml``), start the watches.

        ``close()`` deletes a namespace the lab created (now or at an earlier connect)
        unless ``keep_namespace=True``. Raises ``LabError`` within about
        ``connect_timeout`` seconds when the API server cannot be reached or rejects the
        credentials; no credential is ever in the message.
        """
        if unknown:
            raise ConfigError(
                f"KubeCluster.start() got unknown option(s) {', '.join(sorted(unknown))}; it "
                f"accepts {OPTIONS}"
            )
        if not namespace or not isinstance(namespace, str):
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
            keep_namespace=keep_namespace,
        )
        try:
            if create_namespace:
                cluster._owns_namespace = await asyncio.to_thread(
                    namespace_mod.ensure, clients, namespace, load_documents
                )
            if watch:
                await asyncio.to_thread(cluster._start_watches)
        except BaseException:
            cluster.keep_namespace = True  # never delete what a failed start did not own
            await cluster.close()
            raise
        return cluster

    def _start_watches(self) -> None:
        self._watches = start_namespace_watches(self.clients, self.namespace, self._hub, self._pods)

    async def close(self) -> None:
        """Stop the watches (their sockets are shut, so this is prompt) and the client, and
        delete the lab's namespace unless ``keep_namespace`` (a Note says it was kept)."""
        if self._closed:
            return
        self._closed = True
        await self._gateway_sync.close()
        for watch_loop in self._watches:
            watch_loop.stop()
        await self._rollouts.interrupt_all()

        def join() -> None:
            for watch_loop in self._watches:
                watch_loop.join(10.0)

        await asyncio.to_thread(join)
        try:
            await asyncio.to_thread(self._release_namespace)
        finally:
            self._hub.close()
            self.clients.close()

    def _release_namespace(self) -> None:
        if not self._owns_namespace:
            return
        if self.keep_namespace:
            self.note(
                f"namespace {self.namespace} kept (keep_namespace=True); "
                f"`kubectl delete namespace {self.namespace}` removes it",
                f"namespace/{self.namespace}",
                reason="NamespaceKept",
            )
            return
        if namespace_mod.delete(self.clients, self.namespace):
            self.note(
                f"namespace {self.namespace} deleted with everything in it",
                f"namespace/{self.namespace}",
                reason="NamespaceDeleted",
            )

    async def __aenter__(self) -> KubeCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this KubeCluster is closed; connect() again")

    def _context_arg(self) -> str | None:
        return self.context.name if self.context.flavour != "in-cluster" else None

    # --- resources ---------------------------------------------------------------------------
    async def apply(self, source: ManifestSource, *, force: bool = True) -> list[str]:
        """Server-side apply as field manager ``zdlab``, in dependency order
        (DestinationRule before VirtualService); a Namespace manifest is applied as the
        lab's namespace, whatever its name.

        ``force`` (the default, ``kubectl apply --server-side --force-conflicts``) takes
        over fields another manager set: the lab owns its namespace and its manifests are
        the truth an experiment starts from, so a ``kubectl edit`` or ``kubectl scale``
        left over from a previous exercise must be overwritten, not block the next run.
        ``force=False`` refuses instead: ``LabError`` naming each contested field and its
        manager (the server's 409 Conflict).
        """
        self._check_open()
        return await asyncio.to_thread(apply_all, self.clients, self.namespace, source, force)

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete by manifest or ``kind/name``; objects already gone are skipped."""
        self._check_open()
        return await asyncio.to_thread(delete_all, self.clients, self.namespace, source)

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """``kubectl set image``: a strategic-merge patch of one container's image."""
        self._check_open()
        deployments_mod.check_image(image)
        await asyncio.to_thread(
            deployments_mod.set_image, self.clients, self.namespace, deployment, image, container
        )

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """Until kubectl would say "successfully rolled out"; ``RolloutTimeoutError`` else,
        ``NotFoundError`` for a missing Deployment."""
        self._check_open()
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, not {timeout}")
        await self._rollouts.wait(self.clients.apps, self.namespace, deployment, timeout)

    async def scale(self, deployment: str, replicas: int) -> None:
        """Patch the Deployment's ``scale`` subresource (what ``kubectl scale`` does)."""
        self._check_open()
        checked = deployments_mod.check_replicas(replicas)
        await asyncio.to_thread(
            deployments_mod.scale, self.clients, self.namespace, deployment, checked
        )

    def deployment_status(self, deployment: str) -> dict[str, Any]:
        """The embedded backend's keys (replicas, current, updated, ready, available,
        updated_available, terminating, revision, complete) from the Deployment's status.

        Synchronous like the embedded backend's (the protocol's), so it blocks for two API
        round trips (the Deployment, its ReplicaSets): a few milliseconds on a local cluster.
        """
        self._check_open()
        return deployments_mod.status(self.clients, self.namespace, deployment)

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Set the whole split of every route (``manifests.routing.reweight``); records a
        ``WeightsChanged`` event with the weights and the shares they give, then watches
        the gateway take them (``ConfigPushed``)."""
        self._check_open()
        checked = validate_weights(weights)
        data = await asyncio.to_thread(
            patch_weights, self.clients, self.namespace, virtualservice, checked
        )
        changed_at = time.time()
        shown = " / ".join(f"{s} {w}" for s, w in checked.items())
        self._hub.publish(
            Event(
                EventKind.WEIGHTS_CHANGED,
                f"virtualservice/{virtualservice}",
                shown,
                changed_at,
                data,
            )
        )
        self._gateway_sync.confirm_push("weights", changed_at, {"virtualservice": virtualservice})

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Until the ingress gateway routes every gateway-bound VirtualService as its spec
        says, with a healthy endpoint behind each route (see ``settle``); polls the
        gateway's real Envoy config every half second. ``ConfigNotSettledError`` (a
        ``TimeoutError``) after ``timeout`` seconds, naming what is still missing;
        ``ConfigRejectedError`` when the gateway's Envoy rejected (NACKed) the latest update
        of a resource (its config dump's ``error_state``), naming it and Envoy's reason."""
        self._check_open()
        await self._gateway_sync.settled(timeout)

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        self._check_open()
        return await asyncio.to_thread(list_pods, self.clients, self.namespace, selector)

    # --- events ------------------------------------------------------------------------------
    def events(self, since: float | None = None) -> list[Event]:
        return self._hub.events(since)

    def subscribe(self) -> AsyncIterator[Event]:
        """Events from now on, until ``close()``. Registered when called (not at the first
        iteration), so nothing published between this call and the first ``async for``
        step is missed."""
        return self._hub.subscribe(since=time.time())

    def note(self, message: str, obj: str = "lab", **data: Any) -> Event:
        """Add a ``Note`` event by hand (e.g. "load started") to the timeline."""
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
        return gateway_mod.service_url(
            self.clients.core,
            self.namespace,
            service,
            self.context,
            kind_config=self._kind_config,
            runner=self._runner,
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

    async def logs(self, pod: str, tail: int | None = None, previous: bool = False) -> str:
        """The app container's log (``kubectl logs [--previous] [--tail]``);
        ``NotFoundError`` for a missing pod, ``ConfigError`` for ``previous`` before any
        restart."""
        self._check_open()
        return await asyncio.to_thread(
            read_log, self.clients, self.namespace, pod, tail, bool(previous)
        )

    async def build_image(self, version: str, **options: Any) -> str:
        """Build ``zdlab/demo:<version>`` and load it into the kind/minikube node (options:
        ``images.build_with_options``)."""
        return await asyncio.to_thread(
            images_mod.build_with_options, version, self.context, options
        )

    def __repr__(self) -> str:
        return (
            f"KubeCluster(context={self.context.name!r}, server={self.context.server!r}, "
            f"namespace={self.namespace!r})"
        )
