"""The EndpointSlice controller: which pods back each Service, and what changed.

Every serving pod matching a Service's selector is an endpoint, with its conditions --
``ready`` (serving, not terminating) or ``terminating`` (deleted but its readiness still
passing). ``EndpointAdded``/``EndpointRemoved`` events follow the ready ones (the rotation);
kube-proxy falls back to the serving-terminating ones when none is ready, istiod never does
(``dataplane.kube_proxy_endpoints`` / ``istiod_endpoints``).

The computation is pure (``endpoint_sets``, ``diff_endpoints``: pods + Services in, endpoint
sets and their changes out) so the rules are tested without a process; ``EndpointsController``
publishes the result to the proxies and the event log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lab_app.cluster.embedded.dataplane import SliceEndpoint
from lab_app.cluster.embedded.envoy import Endpoint
from lab_app.cluster.embedded.options import ClusterOptions
from lab_app.cluster.events import EventKind

Emit = Callable[..., Any]


class PodState(Protocol):
    """What the controller reads of a pod (``pods.Pod`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def pod_port(self) -> int: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ready(self) -> bool: ...
    @property
    def terminating(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A label selector: every key equal; an empty selector selects nothing."""
    return bool(selector) and all(labels.get(k) == str(v) for k, v in selector.items())


def endpoint_sets(
    pods: Iterable[PodState], services: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[Endpoint]]:
    """Service name -> its endpoints, sorted by pod: the pods that match its selector and
    pass readiness and are not gone; a terminating one is ``ready=False, terminating=True``."""
    pods = list(pods)
    out: dict[str, list[Endpoint]] = {}
    for name, service in services.items():
        selector = (service.get("spec") or {}).get("selector") or {}
        out[name] = sorted(
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
                for p in pods
                if matches(selector, p.labels) and p.ready and not p.deleted
            ),
            key=lambda e: e.pod,
        )
    return out


@dataclass(frozen=True)
class EndpointChange:
    """How a Service's endpoint set changed: the ready pods ``added`` and ``removed``, the
    ``kept`` ones (serving-terminating pods kube-proxy keeps since none is ready), and
    whether the ready set changed (istiod pushes only then)."""

    added: list[str]
    removed: list[str]
    kept: frozenset[str]
    ready_changed: bool


def _conditions(endpoints: Sequence[Endpoint]) -> list[tuple[str, int, bool]]:
    return [(e.pod, e.port, e.ready) for e in endpoints]


def diff_endpoints(
    previous: Sequence[Endpoint], current: Sequence[Endpoint]
) -> EndpointChange | None:
    """None when no endpoint's pod, port or readiness changed."""
    if _conditions(previous) == _conditions(current):
        return None
    before = {e.pod for e in previous if e.ready}
    after = {e.pod for e in current if e.ready}
    kept = frozenset() if after else frozenset(e.pod for e in current if not e.ready)
    ready_changed = [c for c in _conditions(previous) if c[2]] != [
        c for c in _conditions(current) if c[2]
    ]
    return EndpointChange(sorted(after - before), sorted(before - after), kept, ready_changed)


class EndpointsController:
    """Holds the published endpoint sets; ``sync`` recomputes them and tells who cares.

    ``publish(service, endpoints, ready_changed)`` hands a changed set to the proxies;
    ``find_pod(name)`` finds a pod (live or recently deleted) to say why it left.
    """

    def __init__(
        self,
        *,
        options: ClusterOptions,
        emit: Emit,
        publish: Callable[[str, list[Endpoint], bool], None],
        find_pod: Callable[[str], PodState | None],
    ) -> None:
        self.sets: dict[str, list[Endpoint]] = {}
        self._emit = emit
        self._publish = publish
        self._find_pod = find_pod
        # only to say in the events how late each consumer learns the change
        self._propagation_delay = options.propagation_delay
        self._istiod_debounce = options.istiod_debounce

    def forget(self, service: str) -> None:
        self.sets.pop(service, None)

    def sync(self, pods: Iterable[PodState], services: Mapping[str, Mapping[str, Any]]) -> None:
        for name, eps in endpoint_sets(pods, services).items():
            change = diff_endpoints(self.sets.get(name, []), eps)
            if change is None:
                continue
            self._announce(name, change)
            self.sets[name] = eps
            self._publish(name, eps, change.ready_changed)

    def _announce(self, service: str, change: EndpointChange) -> None:
        delay, debounce = self._propagation_delay, self._istiod_debounce
        for pod_name in change.added:
            self._emit(
                EventKind.ENDPOINT_ADDED,
                f"pod/{pod_name}",
                f"endpoint of service/{service} (kube-proxy in {delay:g}s, "
                f"gateway in {debounce:g}s)",
                {"service": service, "pod": pod_name},
            )
        for pod_name in change.removed:
            pod = self._find_pod(pod_name)
            why = "terminating" if pod is None or pod.terminating else "not ready"
            kube_proxy = (
                "kube-proxy keeps it while it serves: no ready endpoint left"
                if pod_name in change.kept
                else f"kube-proxy in {delay:g}s"
            )
            self._emit(
                EventKind.ENDPOINT_REMOVED,
                f"pod/{pod_name}",
                f"{why}: removed from service/{service} ({kube_proxy}, gateway in {debounce:g}s)",
                {
                    "service": service,
                    "pod": pod_name,
                    "reason": why,
                    "serving_terminating": pod_name in change.kept,
                },
            )
