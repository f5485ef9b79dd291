"""Watching the ingress gateway's Envoy take the config: ``config_settled`` and ConfigPushed.

``settle`` holds the pure comparison (VirtualService spec vs. the gateway's route and
endpoint rows, NACKs in a config dump); this module does the reading around it: list the
gateway-bound VirtualServices, read the gateway's real Envoy config through the shared
``proxy_config`` view, poll until it matches. ``config_settled`` raises the errors both
backends share (``ConfigNotSettledError``, ``ConfigRejectedError``); after ``set_weights``
a background task reports when the gateway holds the new split (a ``ConfigPushed`` event)
or that it did not within its deadline (a ``Note``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from lab_app.cluster.events import Event, EventHub, EventKind
from lab_app.cluster.kube import proxy as proxy_mod
from lab_app.cluster.kube.client import KubeClients, json_object
from lab_app.cluster.kube.resources import type_for_kind
from lab_app.cluster.kube.settle import gateway_bound, rejected_updates, settle_problem
from lab_app.cluster.proxyconfig import ProxyConfigKind
from lab_app.errors import ConfigNotSettledError, ConfigRejectedError, LabError


@dataclass(eq=False, repr=False)
class GatewaySync:
    """Reads whether the gateway holds the namespace's routing; see the module doc."""

    clients: KubeClients
    namespace: str
    hub: EventHub
    _: KW_ONLY
    context: str | None
    kubeconfig: str | None
    istioctl: str | None
    closed: Callable[[], bool]
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    # --- config_settled ------------------------------------------------------------------
    async def settled(self, timeout: float) -> None:
        """Poll every half second until the gateway holds the config (see ``KubeCluster``)."""
        deadline = time.monotonic() + timeout
        while True:
            problem = await asyncio.to_thread(self.problem, True, False)
            rejected = await asyncio.to_thread(self.rejections)
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

    def rejections(self) -> dict[str, str]:
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

    def problem(self, endpoints: bool = True, strict: bool = False) -> str | None:
        """Blocking: ``None`` when the gateway holds the config, else what is missing.
        ``strict``: "cannot tell" (no Istio, nothing routed, no readable view) is a
        problem too, not a success."""
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
        try:
            routes = self._rows("routes")
            if routes is None:  # no shared view to read Envoy's routes with: cannot tell
                return unknown
            problem = settle_problem(virtualservices, routes, None, self.namespace)
            if problem is None and endpoints:
                endpoint_rows = self._rows("endpoints")
                problem = settle_problem(
                    virtualservices, routes, endpoint_rows or [], self.namespace
                )
        except LabError as exc:  # e.g. the gateway pod is not ready yet
            return str(exc)
        except ApiException as exc:
            return f"HTTP {exc.status} reading the gateway's config"
        return problem

    def _rows(self, kind: ProxyConfigKind) -> list[dict[str, Any]] | None:
        view = proxy_mod.proxy_config(
            self.clients.core,
            kind,
            "gateway",
            self.namespace,
            context=self.context,
            kubeconfig=self.kubeconfig,
            istioctl=self.istioctl,
        )
        rows = getattr(view, "rows", None)
        return list(rows) if rows is not None else None

    # --- ConfigPushed --------------------------------------------------------------------
    def confirm_push(self, reason: str, changed_at: float, data: dict[str, Any]) -> None:
        """In the background, watch the gateway's Envoy take the change: ConfigPushed."""
        task = asyncio.get_running_loop().create_task(
            self.await_push(reason, changed_at, data), name=f"zdlab-push-{reason}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def await_push(
        self, reason: str, changed_at: float, data: dict[str, Any], timeout: float = 30.0
    ) -> None:
        """Poll the gateway's routes until they match; the event's time is when seen, so its
        lag includes the poll period (a few hundred ms), unlike the embedded backend's."""
        deadline = time.monotonic() + timeout
        problem: str | None = "not checked"
        while time.monotonic() < deadline and not self.closed():
            problem = await asyncio.to_thread(self.problem, False, True)
            if problem is None:
                now = time.time()
                lag_ms = (now - changed_at) * 1000
                self.hub.publish(
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
        if not self.closed():
            self.hub.publish(
                Event(
                    EventKind.NOTE,
                    "proxy/gateway",
                    f"{reason}: not seen in the gateway within {timeout:g} s ({problem})",
                    data={**data, "reason": reason},
                )
            )

    async def close(self) -> None:
        """Cancel the background confirmations (those of this loop are awaited)."""
        loop = asyncio.get_running_loop()
        for task in list(self._tasks):
            with contextlib.suppress(RuntimeError):  # its loop is gone (closed at exit)
                task.cancel()
        mine = [t for t in self._tasks if t.get_loop() is loop]
        if mine:
            await asyncio.wait(mine, timeout=15)
