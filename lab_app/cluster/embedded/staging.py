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
from dataclasses import dataclass, field
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


@dataclass(kw_only=True, eq=False, repr=False)
class Stager:
    """Runs the staged changes against the store and the parts that act on them."""

    options: ClusterOptions
    store: Store
    deployments: DeploymentController
    kubelet: Kubelet
    proxies: Proxies
    emit: Emit
    kick: Callable[[], None]
    images: ImageStore | None = field(default=None, init=False)  # set by the cluster's start()
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def check_istio(self, staged: ObjectsView) -> list[RouteProblem]:
        """Routes to undefined subsets over the whole future state (refused with
        ``strict_routes``, else returned: Istio accepts them), and a trial translation."""
        vss, drs = store_mod.routes_of(staged)
        if vss and self.options.strict_routes:
            check_routes(vss, drs, require_destinationrule=True)
        problems = store_mod.problems_of(staged)
        if staged["Gateway"] or vss:
            self.proxies.build_gateway(staged)
        return problems

    async def apply(self, docs: list[Any]) -> list[str]:
        """Validate every document, then create or update; nothing changes on an error."""
        assert self.images is not None
        async with self.lock:
            staged = self.store.staged()
            planned: list[tuple[Any, Any]] = []
            for m in docs:
                kind, name = m.kind, m.name
                store_mod.check_document(m, staged, self.options.namespace)
                extra: Any = None
                if kind == "Deployment":
                    spec = parse_deployment(m.obj, source=m.source)
                    image = await self.images.resolve(
                        spec.template.container.image, source=m.source, field=IMAGE_FIELD
                    )
                    current = self.deployments.deployments.get(name)
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
            before = store_mod.problems_of(self.store.objects)
            problems = self.check_istio(staged)
            refs = [await self._commit(m, staged[m.kind][m.name], extra) for m, extra in planned]
            if any(m.kind == "Service" or m.kind in ISTIO_KINDS for m, _ in planned):
                self.proxies.trigger("config")
            self.kick()
            for m, _ in planned:
                deprecated = deprecated_api(m.obj)
                if deprecated:
                    self.emit(
                        EventKind.CONFIG_WARNING,
                        m.ref,
                        f"{deprecated} ({m.source})",
                        {"reason": "DeprecatedAPIVersion", "apiVersion": m.api_version,
                         "use": ISTIO_API_VERSION, "source": m.source},
                    )  # fmt: skip
            self._pod_security_warnings([m for m, _ in planned])
            applied_vss = {m.name for m, _ in planned if m.kind == "VirtualService"}
            store_mod.warn_routes(self.emit, problems, before, applied_vss)
            return refs

    def _pod_security_warnings(self, applied: list[Any]) -> None:
        """What the API server says of a workload whose pod template breaks the namespace's
        Pod Security level (``pod-security.kubernetes.io/warn``): ``Warning: would violate
        PodSecurity ...``, as a ``ConfigWarning`` event; the object is still created (Pod
        Security admission enforces on Pods, not on Deployments)."""
        labels = self.store.namespace_labels
        for m in applied:
            said = pod_security.message(pod_security.check(labels, m.obj), "warn")
            if said:
                self.emit(
                    EventKind.CONFIG_WARNING,
                    m.ref,
                    f"would be admitted with a warning: {said} ({m.source})",
                    {"reason": "PodSecurity", "source": m.source},
                )

    async def _commit(self, m: Any, stored: Stored, extra: Any) -> str:
        """Store one checked object and hand it to the part that acts on its kind."""
        kind, name = m.kind, m.name
        if kind == "Service":
            await self.proxies.add_service(stored)
        self.store.objects[kind][name] = stored
        if kind == "Deployment":
            spec, image = extra
            self.deployments.upsert(spec, image, source=m.source, raw=stored.obj)
        elif kind == "Namespace":
            self.store.namespace_labels = dict((m.obj.get("metadata") or {}).get("labels") or {})
        elif kind == "ConfigMap":
            self.kubelet.wake_all()
        elif kind == "HorizontalPodAutoscaler":
            self.emit(
                EventKind.NOTE,
                f"horizontalpodautoscaler/{name}",
                "stored; the embedded backend does not autoscale (use scale())",
            )
        return f"{kind.lower()}/{name}"

    async def delete(self, refs: list[tuple[str, str]]) -> list[str]:
        """Delete ``(Kind, name)`` objects (all or none); pods terminate gracefully."""
        async with self.lock:
            staged = self.store.staged()
            # an object that does not exist is skipped, as `kubectl delete --ignore-not-found`
            # and the kubernetes backend do (tests/contract)
            refs = [
                (kind, name)
                for kind, name in refs
                if name in (self.kubelet.pods if kind == "Pod" else staged.get(kind, {}))
            ]
            for kind, name in refs:
                if kind != "Pod":
                    del staged[kind][name]
            before = store_mod.problems_of(self.store.objects)
            # break before make: refused with strict_routes, else a ConfigWarning like apply
            problems = self.check_istio(staged)
            out: list[str] = []
            for kind, name in refs:
                out.append(f"{kind.lower()}/{name}")
                if kind == "Pod":
                    self.kubelet.pods[name].terminate()
                    continue
                self.store.objects[kind].pop(name, None)
                if kind == "Deployment":
                    self.deployments.delete(name)
                elif kind == "Service":
                    await self.proxies.remove_service(name)
                elif kind == "Namespace":
                    self.store.namespace_labels = {}
                elif kind in ISTIO_KINDS:
                    self.proxies.trigger("config")
            self.kick()
            store_mod.warn_routes(self.emit, problems, before, set())
            return out

    async def set_weights(self, virtualservice: str, weights: Mapping[str, int]) -> None:
        """``weights.reweight`` the VirtualService, check it with the rest, commit, push."""
        from lab_app.manifests import Manifest, validate_object

        async with self.lock:
            stored = self.store.objects["VirtualService"].get(virtualservice)
            if stored is None:
                known = ", ".join(sorted(self.store.objects["VirtualService"])) or "none"
                raise NotFoundError(
                    f"virtualservice/{virtualservice} not found in namespace "
                    f"{self.options.namespace!r} (known: {known})"
                )
            where = f"virtualservice/{virtualservice} ({stored.source})"
            obj = weights_mod.reweight(
                stored.obj, self.store.subsets_by_host(), weights, where=where
            )
            validate_object(obj, source=where)
            staged = self.store.staged()
            new = Stored(obj, stored.source, Manifest(obj=obj, source=stored.source))
            staged["VirtualService"][virtualservice] = new
            self.check_istio(staged)
            self.store.objects["VirtualService"][virtualservice] = new
            self.emit(
                EventKind.WEIGHTS_CHANGED,
                f"virtualservice/{virtualservice}",
                ", ".join(f"{s} {w}" for s, w in weights.items()),
                {"weights": dict(weights), "shares": weights_mod.route_shares(obj)},
            )
            self.proxies.trigger("weights")

    def deployment(self, name: str) -> Deployment:
        dep = self.deployments.deployments.get(name)
        if dep is None or dep.deleting:
            known = ", ".join(sorted(self.deployments.deployments)) or "none"
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
            self.deployments.upsert(spec, image, source=dep.source, raw=raw)
            self.store.objects["Deployment"][dep.name] = Stored(raw, dep.source)
            self.kick()
