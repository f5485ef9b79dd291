"""Staged changes: ``apply``, ``delete``, ``set_weights``, ``set_image``/``scale``.

Each works the same way, under one lock: copy the applied objects, make the change on the
copy, check the *whole future state* -- every manifest (``store.check_document``), each
Deployment's image, routes to undefined subsets (refused with ``strict_routes``, else a
``ConfigWarning`` like Istio's IST0101), a trial translation for the gateway -- and only then
commit, handing each object to the part that acts on it (the Deployment controller, a
kube-proxy, the gateway, the pods waiting for a ConfigMap). So a bad manifest changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

from lab_app.cluster.embedded import store as store_mod
from lab_app.cluster.embedded import weights as weights_mod
from lab_app.cluster.embedded.deployments import Deployment, DeploymentController
from lab_app.cluster.embedded.images import ImageStore
from lab_app.cluster.embedded.kubelet import Kubelet
from lab_app.cluster.embedded.options import ClusterOptions
from lab_app.cluster.embedded.proxies import Proxies
from lab_app.cluster.embedded.specs import parse_deployment
from lab_app.cluster.embedded.store import ISTIO_KINDS, ObjectsView, Store, Stored
from lab_app.cluster.events import EventKind
from lab_app.errors import ManifestError, NotFoundError
from lab_app.manifests import (
    ISTIO_API_VERSION,
    RouteProblem,
    check_routes,
    deprecated_api,
    pod_security,
)

Emit = Callable[..., Any]
IMAGE_FIELD = "spec.template.spec.containers[0].image"


class Stager:
    """Runs the staged changes against the store and the parts that act on them."""

    def __init__(
        self,
        *,
        options: ClusterOptions,
        store: Store,
        deployments: DeploymentController,
        kubelet: Kubelet,
        proxies: Proxies,
        emit: Emit,
        kick: Callable[[], None],
    ) -> None:
        self._opts = options
        self._store = store
        self._deployments = deployments
        self._kubelet = kubelet
        self._proxies = proxies
        self._emit = emit
        self._kick = kick
        self.images: ImageStore | None = None  # set by start() (it lives in the state dir)
        self.lock = asyncio.Lock()

    def check_istio(self, staged: ObjectsView) -> list[RouteProblem]:
        """Routes to undefined subsets over the whole future state (refused with
        ``strict_routes``, else returned: Istio accepts them), and a trial translation."""
        vss, drs = store_mod.routes_of(staged)
        if vss and self._opts.strict_routes:
            check_routes(vss, drs, require_destinationrule=True)
        problems = store_mod.problems_of(staged)
        if staged["Gateway"] or vss:
            self._proxies.build_gateway(staged)
        return problems

    async def apply(self, docs: list[Any]) -> list[str]:
        """Validate every document, then create or update; nothing changes on an error."""
        assert self.images is not None
        async with self.lock:
            staged = self._store.staged()
            planned: list[tuple[Any, Any]] = []
            for m in docs:
                kind, name = m.kind, m.name
                store_mod.check_document(m, staged, self._opts.namespace)
                extra: Any = None
                if kind == "Deployment":
                    spec = parse_deployment(m.obj, source=m.source)
                    image = await self.images.resolve(
                        spec.template.container.image, source=m.source, field=IMAGE_FIELD
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
                staged[kind][name] = Stored(copy.deepcopy(m.obj), m.source, m)
                planned.append((m, extra))
            before = store_mod.problems_of(self._store.objects)
            problems = self.check_istio(staged)
            refs = [await self._commit(m, staged[m.kind][m.name], extra) for m, extra in planned]
            if any(m.kind == "Service" or m.kind in ISTIO_KINDS for m, _ in planned):
                self._proxies.trigger("config")
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
            self._pod_security_warnings([m for m, _ in planned])
            applied_vss = {m.name for m, _ in planned if m.kind == "VirtualService"}
            store_mod.warn_routes(self._emit, problems, before, applied_vss)
            return refs

    def _pod_security_warnings(self, applied: list[Any]) -> None:
        """What the API server says of a workload whose pod template breaks the namespace's
        Pod Security level (``pod-security.kubernetes.io/warn``): ``Warning: would violate
        PodSecurity ...``, as a ``ConfigWarning`` event; the object is still created (Pod
        Security admission enforces on Pods, not on Deployments)."""
        labels = self._store.namespace_labels
        for m in applied:
            said = pod_security.message(pod_security.check(labels, m.obj), "warn")
            if said:
                self._emit(
                    EventKind.CONFIG_WARNING,
                    m.ref,
                    f"would be admitted with a warning: {said} ({m.source})",
                    {"reason": "PodSecurity", "source": m.source},
                )

    async def _commit(self, m: Any, stored: Stored, extra: Any) -> str:
        """Store one checked object and hand it to the part that acts on its kind."""
        kind, name = m.kind, m.name
        if kind == "Service":
            await self._proxies.add_service(stored)
        self._store.objects[kind][name] = stored
        if kind == "Deployment":
            spec, image = extra
            self._deployments.upsert(spec, image, source=m.source, raw=stored.obj)
        elif kind == "Namespace":
            self._store.namespace_labels = dict((m.obj.get("metadata") or {}).get("labels") or {})
        elif kind == "ConfigMap":
            self._kubelet.wake_all()
        elif kind == "HorizontalPodAutoscaler":
            self._emit(
                EventKind.NOTE,
                f"horizontalpodautoscaler/{name}",
                "stored; the embedded backend does not autoscale (use scale())",
            )
        return f"{kind.lower()}/{name}"

    async def delete(self, refs: list[tuple[str, str]]) -> list[str]:
        """Delete ``(Kind, name)`` objects (all or none); pods terminate gracefully."""
        async with self.lock:
            staged = self._store.staged()
            # an object that does not exist is skipped, as `kubectl delete --ignore-not-found`
            # and the kubernetes backend do (tests/contract)
            refs = [
                (kind, name)
                for kind, name in refs
                if name in (self._kubelet.pods if kind == "Pod" else staged.get(kind, {}))
            ]
            for kind, name in refs:
                if kind != "Pod":
                    del staged[kind][name]
            before = store_mod.problems_of(self._store.objects)
            # break before make: refused with strict_routes, else a ConfigWarning like apply
            problems = self.check_istio(staged)
            out: list[str] = []
            for kind, name in refs:
                out.append(f"{kind.lower()}/{name}")
                if kind == "Pod":
                    self._kubelet.pods[name].terminate()
                    continue
                self._store.objects[kind].pop(name, None)
                if kind == "Deployment":
                    self._deployments.delete(name)
                elif kind == "Service":
                    await self._proxies.remove_service(name)
                elif kind == "Namespace":
                    self._store.namespace_labels = {}
                elif kind in ISTIO_KINDS:
                    self._proxies.trigger("config")
            self._kick()
            store_mod.warn_routes(self._emit, problems, before, set())
            return out

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """``weights.reweight`` the VirtualService, check it with the rest, commit, push."""
        from lab_app.manifests import Manifest, validate_object

        async with self.lock:
            stored = self._store.objects["VirtualService"].get(virtualservice)
            if stored is None:
                known = ", ".join(sorted(self._store.objects["VirtualService"])) or "none"
                raise NotFoundError(
                    f"virtualservice/{virtualservice} not found in namespace "
                    f"{self._opts.namespace!r} (known: {known})"
                )
            where = f"virtualservice/{virtualservice} ({stored.source})"
            obj = weights_mod.reweight(
                stored.obj, self._store.subsets_by_host(), weights, where=where
            )
            validate_object(obj, source=where)
            staged = self._store.staged()
            new = Stored(obj, stored.source, Manifest(obj=obj, source=stored.source))
            staged["VirtualService"][virtualservice] = new
            self.check_istio(staged)
            self._store.objects["VirtualService"][virtualservice] = new
            self._emit(
                EventKind.WEIGHTS_CHANGED,
                f"virtualservice/{virtualservice}",
                ", ".join(f"{s} {w}" for s, w in weights.items()),
                {"weights": dict(weights), "shares": weights_mod.route_shares(obj)},
            )
            self._proxies.trigger("weights")

    def deployment(self, name: str) -> Deployment:
        dep = self._deployments.deployments.get(name)
        if dep is None or dep.deleting:
            known = ", ".join(sorted(self._deployments.deployments)) or "none"
            raise NotFoundError(f"deployment/{name} not found (deployments: {known})")
        return dep

    async def update_deployment(
        self, name: str, change: Callable[[Deployment, dict[str, Any]], None], why: str
    ) -> None:
        """``kubectl set image`` / ``scale``: ``change`` edits a copy of the Deployment's
        manifest (raising to refuse), which is then applied like a new version of it."""
        assert self.images is not None
        async with self.lock:
            dep = self.deployment(name)
            raw = copy.deepcopy(dep.raw)
            change(dep, raw)
            source = f"{why}(deployment/{name})"
            spec = parse_deployment(raw, source=source)
            image = await self.images.resolve(
                spec.template.container.image, source=source, field=IMAGE_FIELD
            )
            self._deployments.upsert(spec, image, source=dep.source, raw=raw)
            self._store.objects["Deployment"][dep.name] = Stored(raw, dep.source)
            self._kick()
