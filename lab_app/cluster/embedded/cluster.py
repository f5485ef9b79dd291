"""``EmbeddedCluster``: Kubernetes + Istio semantics on one machine, with real processes.

The facade over the parts (all on 127.0.0.1, every process owned: ``procs.py``): the kubelet
(``kubelet.py``, ``pods.py``, ``sidecar.py``) runs pods from image snapshots (``images.py``);
the Deployment controllers (``deployments.py``) and the endpoints controller (``endpoints.py``)
run in one loop (``control.py``); the gateway and kube-proxy Envoys (``proxies.py``,
``dataplane.py``) learn changes with deliberate delays. Options: ``options.py``;
``apply``/``delete``/``set_weights`` are staged (``staging.py``, ``store.py``, ``weights.py``);
``config_settled``: ``settle.py``; events go to one ``EventHub``.

Faults (``tests/reliability``): a crashed Envoy is restarted like a container, with its last
config (``ProxyCrashed``/``ProxyRestarted``); a failed restart is a ``Note`` event
(``data["reason"] == "RestartFailed"``), is listed by ``proxy_errors()`` and makes
``config_settled()`` raise ``LabError``. A removed state directory is a ``Note``
(``StateDirRemoved``) and a ``LabError`` from every later call but ``close()``.

Not modelled: CPU limits, volumes (``emptyDir`` accepted, ignored), securityContext (accepted;
processes run as the lab's user), imagePullPolicy, HPAs (stored, not acted on), scheduling.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from lab_app.cluster.base import ManifestSource, PodInfo
from lab_app.cluster.embedded import rollout
from lab_app.cluster.embedded.control import ControlLoop
from lab_app.cluster.embedded.dataplane import IngressGateway
from lab_app.cluster.embedded.deployments import DeploymentController
from lab_app.cluster.embedded.endpoints import EndpointsController
from lab_app.cluster.embedded.envoy import EnvoyProcess
from lab_app.cluster.embedded.images import Image, ImageStore
from lab_app.cluster.embedded.kubelet import Kubelet
from lab_app.cluster.embedded.options import (
    check_port_free,
    cluster_options,
    envoy_binary,
    state_dir_removed,
    state_directory,
    warm_validator,
)
from lab_app.cluster.embedded.pods import Pod, free_port
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.proxies import Proxies
from lab_app.cluster.embedded.staging import Stager
from lab_app.cluster.embedded.store import Store, resolve_refs
from lab_app.cluster.events import Event, EventHub, EventKind
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.errors import ConfigError, LabError


class EmbeddedCluster:
    """The embedded backend (see the module docstring); implements ``lab_app.cluster.Cluster``."""

    backend = "embedded"

    def __init__(self, **options: Any) -> None:
        """``options``: see ``options.cluster_options`` (checked here, before anything runs)."""
        opts = cluster_options(**options)
        self.options = opts
        self.namespace = opts.namespace
        self.propagation_delay = opts.propagation_delay
        self.istiod_debounce = opts.istiod_debounce
        self.istiod_debounce_max = opts.istiod_debounce_max
        self.sidecar_injection = opts.sidecar_injection
        self.strict_routes = opts.strict_routes
        self.versions, self.sidecar_mode = opts.versions, opts.sidecar_mode
        self.state_dir: Path = Path()
        self.started_at: float | None = None
        self._owns_state_dir = False
        # each event also goes to the proxies, which keep the latest push outcomes
        self._hub = EventHub(observe=lambda event: self._proxies.record(event))
        self._emit = self._hub.emit
        self._control = ControlLoop(
            self._reconcile,
            lambda exc: self._emit(EventKind.NOTE, "controller", f"reconcile failed: {exc!r}"),
        )
        self._store = Store()
        self._kubelet = Kubelet(
            options=opts, store=self._store, emit=self._emit, on_change=self._control.kick
        )
        self._endpoints = EndpointsController(
            options=opts,
            emit=self._emit,
            publish=lambda *change: self._proxies.publish(*change),
            find_pod=self._kubelet.find,
        )
        self._proxies = Proxies(
            options=opts,
            emit=self._emit,
            store=self._store,
            endpoints=self._endpoints.sets,
            pods=self._kubelet.pods,
        )
        self._deployments = DeploymentController(
            emit=self._emit,
            create_pod=self._kubelet.create_pod,
            delete_pod=self._kubelet.delete_pod,
        )
        self._staging = Stager(
            options=opts,
            store=self._store,
            deployments=self._deployments,
            kubelet=self._kubelet,
            proxies=self._proxies,
            emit=self._emit,
            kick=self._control.kick,
        )
        self._images: ImageStore | None = None
        self._reaper: Reaper | None = None
        self._warmup: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._broken: str | None = None  # why the cluster can no longer work (see _check_open)

    @classmethod
    async def start(cls, **options: Any) -> EmbeddedCluster:
        """Start the embedded cluster (reaper, gateway Envoy, controllers); see the module doc."""
        cluster = cls(**options)
        await cluster._start()
        return cluster

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        t0 = time.perf_counter()
        # fail fast, before anything runs: the Envoy binary and the gateway port
        envoy_bin = envoy_binary(self.options.envoy_bin)
        self.options.kubelet.envoy_bin = envoy_bin  # the sidecars run the same Envoy
        if self.options.gateway_port:
            check_port_free(self.options.gateway_port, "gateway_port")
        gateway_port = self._proxies.gateway_port = self.options.gateway_port or free_port()
        self._control.prepare()
        try:
            self.state_dir, self._owns_state_dir = state_directory(self.options.state_dir)
            self._images = self._staging.images = ImageStore(self.state_dir / "images")
            self._images.root.mkdir(parents=True, exist_ok=True)
            self._reaper = await Reaper.start(self.state_dir if self._owns_state_dir else None)
            self._kubelet.state_dir, self._kubelet.reaper = self.state_dir, self._reaper
            await self._proxies.start(gateway_port, self.state_dir, self._reaper, envoy_bin)
            self._control.start()
            # the manifest validator loads Kubernetes' schemas once (~2 s): do it now, aside
            self._warmup = asyncio.create_task(asyncio.to_thread(warm_validator))
        except BaseException:
            await self.close()
            raise
        self.started_at = time.time()
        self._emit(
            EventKind.NOTE,
            "cluster/embedded",
            f"cluster up in {time.perf_counter() - t0:.2f}s; gateway {self.gateway_url()}; "
            f"imitating {self.versions.describe()}"
            + (f"; sidecar_mode={self.sidecar_mode}" if self.sidecar_mode else ""),
            {"state_dir": str(self.state_dir), "gateway_port": gateway_port},
        )

    async def __aenter__(self) -> EmbeddedCluster:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def _gateway(self) -> IngressGateway | None:
        return self._proxies.gateway

    async def close(self) -> None:
        """Stop every process this cluster started (pods, sidecars, proxies, the reaper)."""
        if self._closed:
            return
        self._closed = True
        await self._control.stop()
        await self._kubelet.kill_all()
        await self._proxies.stop()
        if self._reaper is not None:
            await self._reaper.stop()
        self._hub.close()
        if self._owns_state_dir and self.state_dir != Path() and self.state_dir.exists():
            # the reaper removed it on "quit"; this is the fallback if the reaper could not
            await asyncio.to_thread(shutil.rmtree, self.state_dir, True)

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this embedded cluster is closed; start a new one")
        if not self._started:
            raise LabError(
                "this embedded cluster is not started; use `await EmbeddedCluster.start()`"
            )
        if self._broken is not None:
            raise LabError(self._broken)

    def _check_state_dir(self) -> None:
        """Notice the state directory vanishing (``rm -rf``, a tmp cleaner): pods could no
        longer restart nor Envoys be reconfigured, so say it once, loudly, and refuse
        further calls; ``close()`` still stops everything."""
        if self._broken is not None or self.state_dir == Path() or self.state_dir.is_dir():
            return
        self._broken = state_dir_removed(self.state_dir)
        self._emit(
            EventKind.NOTE,
            "cluster/embedded",
            f"error: {self._broken}",
            {"reason": "StateDirRemoved", "state_dir": str(self.state_dir)},
        )

    # ================================================================ events

    def note(self, message: str, obj: str = "lab", **data: Any) -> Event:
        """Add a ``Note`` event by hand (experiments mark their steps with it)."""
        return self._emit(EventKind.NOTE, obj, message, data)

    def events(self, since: float | None = None) -> list[Event]:
        return self._hub.events(since)

    def subscribe(self) -> AsyncIterator[Event]:
        """Live events from the moment of this call on (charts rely on it: no replay)."""
        return self._hub.subscribe(since=time.time())

    # ================================================================ images, objects

    async def build_image(self, version: str, **options: Any) -> str:
        """Snapshot ``lab_app/service`` as ``zdlab/demo:<version>``; returns the digest ref."""
        self._check_open()
        if options:
            raise ConfigError(f"build_image: unknown options {sorted(options)}")
        assert self._images is not None
        image = await self._images.build(version)
        data = {"image": image.ref, "root": str(image.root)}
        self._emit(EventKind.NOTE, f"image/{version}", f"built {image.ref}", data)
        return image.ref

    def images(self) -> list[Image]:
        return self._images.images() if self._images else []

    async def apply(self, source: ManifestSource) -> list[str]:
        """Validate everything first, then create or update; nothing changes on an error."""
        self._check_open()
        from lab_app.manifests import load_documents

        if self._warmup is not None and not self._warmup.done():
            await asyncio.shield(self._warmup)  # one cold schema load, not two at once
        docs = await asyncio.to_thread(load_documents, source)
        return await self._staging.apply(docs)

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete objects (as manifests or ``kind/name``); pods terminate gracefully."""
        self._check_open()
        refs = await asyncio.to_thread(resolve_refs, source)
        return await self._staging.delete(refs)

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Patch the route weights by subset name, validated against the DestinationRule.

        Subsets not named keep their weight; a named subset that a route does not have yet
        is added as a destination of that route's host. Each weight is an integer 0..100 and
        a route's weights may not all be 0; every subset must exist in the DestinationRule
        (make before break). See ``weights.reweight``.
        """
        self._check_open()
        await self._staging.set_weights(virtualservice, weights)

    # ================================================================ deployments

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """``kubectl set image``: a new pod template, hence a rolling update."""
        self._check_open()
        change = rollout.image_change(deployment, image, container)
        await self._staging.update_deployment(deployment, change, "set_image")

    async def scale(self, deployment: str, replicas: int) -> None:
        self._check_open()
        change = rollout.replicas_change(replicas)
        await self._staging.update_deployment(deployment, change, "scale")

    def deployment_status(self, deployment: str) -> dict[str, Any]:
        dep = self._staging.deployment(deployment)
        return {**dep.status(), "revision": dep.revision, "complete": dep.rollout_complete()}

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """Like ``kubectl rollout status``: all replicas updated and available, old ones gone."""
        self._check_open()
        find = self._staging.deployment
        find(deployment)
        try:
            await self.wait_for(lambda: find(deployment).rollout_complete(), timeout)
        except TimeoutError:
            raise rollout.rollout_timeout(find(deployment), timeout) from None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Wait until ``predicate()`` holds, re-checked at every cluster change (TimeoutError)."""
        await self._control.wait_for(predicate, timeout)

    def _reconcile(self) -> None:
        """One pass of the controllers (``control.py``)."""
        self._check_state_dir()
        for _ in range(10):
            if not self._deployments.reconcile():
                break
        self._kubelet.prune()
        self._endpoints.sync(self._kubelet.pods.values(), self._store.services())

    # ================================================================ proxies

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Wait until every pending endpoint or config change has reached the proxies: the
        istiod pushes to the gateway and the kube-proxy propagation of every Service.

        ``ConfigNotSettledError`` (a ``TimeoutError``) when changes are still pending after
        ``timeout`` seconds; ``ConfigRejectedError`` naming the proxy and Envoy's reason when
        the latest push to a proxy was rejected (it still runs its previous config);
        ``LabError`` when a proxy is down and its restart failed."""
        self._check_open()
        await self._proxies.settled(timeout)

    def config_rejections(self) -> dict[str, str]:
        """Proxies whose latest push was rejected (NACKed): ``proxy/NAME`` -> Envoy's reason."""
        return self._proxies.rejections()

    def proxy_errors(self) -> dict[str, str]:
        """Proxies whose restart after a crash failed: ``proxy/NAME`` -> the reason."""
        return self._proxies.errors()

    def gateway_url(self) -> str:
        self._check_open()
        return f"http://127.0.0.1:{self._proxies.gateway_port}"

    def service_url(self, service: str = "zero-downtime-rollingupdate") -> str:
        self._check_open()
        return self._proxies.service_url(service)

    def service_urls(self) -> dict[str, str]:
        """Every applied Service and the kube-proxy URL that reaches it."""
        return self._proxies.service_urls()

    def _envoy_of(self, proxy: str) -> EnvoyProcess:
        return self._proxies.envoy_of(proxy)

    async def proxy_config(self, kind: ProxyConfigKind = "routes", proxy: str = "gateway") -> Any:
        """``istioctl proxy-config KIND PROXY``: a ``ProxyConfigView`` (``.rows``, ``.table()``);
        ``proxy``: ``gateway``, ``kube-proxy-<service>``, a pod name or ``<pod>-sidecar``."""
        self._check_open()
        return await self._proxies.proxy_config(kind, proxy)

    async def proxy_stats(
        self, proxy: str = "gateway", filter: str | None = None
    ) -> dict[str, Any]:
        """A proxy's Envoy stats (``/stats?filter=REGEX``), e.g. ``upstream_rq_active``."""
        self._check_open()
        return await self._proxies.proxy_stats(proxy, filter)

    # ================================================================ pods

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        return self._kubelet.infos(selector)

    def pod(self, name: str) -> Pod:
        """The live (or recently deleted) pod object, for tests and diagnostics."""
        return self._kubelet.pod(name)

    async def logs(self, pod: str, tail: int | None = None, previous: bool = False) -> str:
        """The pod's app container log (``previous=True``: the container before the restart)."""
        return await self._kubelet.logs(pod, tail, previous)

    def processes(self) -> dict[str, int]:
        """Pids of every process this cluster runs: name -> pid (for diagnostics and tests)."""
        out: dict[str, int] = {}
        if self._reaper is not None and self._reaper.alive:
            out["reaper"] = self._reaper.pid
        return {**out, **self._proxies.processes(), **self._kubelet.processes()}

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._started else "new"
        return (
            f"<EmbeddedCluster {state} namespace={self.namespace} "
            f"pods={len(self._kubelet.pods)} gateway=127.0.0.1:{self._proxies.gateway_port}>"
        )
