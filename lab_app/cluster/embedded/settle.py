"""Has the latest config reached the proxies? ``config_settled`` for the embedded backend.

Istio applies routing asynchronously, so the lab waits for the pending pushes (istiod ->
gateway after its debounce, endpoints -> kube-proxy after the propagation delay) before it
sends traffic. Waiting is not enough: a push can be rejected (Envoy NACKs it and keeps its
previous config) or never land (the proxy crashed and its restart failed). Each is its own
error, naming the proxy, so a notebook says what to fix instead of timing out. The same job
as ``kube/settle.py`` for the kubernetes backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from lab_app.cluster.events import Event, EventKind
from lab_app.errors import ConfigNotSettledError, ConfigRejectedError, LabError

PUSH_OUTCOMES = (EventKind.CONFIG_PUSHED, EventKind.CONFIG_REJECTED)


def rejections(outcomes: Mapping[str, Event], live: Iterable[str]) -> dict[str, str]:
    """``proxy/NAME`` -> Envoy's reason, for each live proxy whose latest push (``outcomes``:
    its last ``ConfigPushed``/``ConfigRejected`` event) was rejected."""
    alive = set(live)
    out: dict[str, str] = {}
    for obj, event in sorted(outcomes.items()):
        if obj in alive and event.kind == EventKind.CONFIG_REJECTED:
            details = event.data.get("details") or [event.message]
            out[obj] = "; ".join(str(d) for d in details)[:500]
    return out


async def wait_settled(
    waits: Iterable[Awaitable[None]],
    timeout: float,
    down: Callable[[], Mapping[str, str]],
    rejected: Callable[[], Mapping[str, str]],
) -> None:
    """Await the proxies' pending pushes (each bounded by ``timeout``), then raise for a
    proxy that is ``down()`` (its restart failed) or whose latest push was ``rejected()``;
    both are asked after the wait, when they are current."""
    try:
        await asyncio.gather(*waits)
    except TimeoutError as exc:
        raise ConfigNotSettledError(
            f"config did not reach the proxies (istiod -> gateway, kube-proxy) within "
            f"{timeout:g}s: {exc}"
        ) from None
    failed = down()
    if failed:
        raise LabError(
            "config cannot reach "
            + "; ".join(
                f"{obj}: it is down and its restart failed ({err})" for obj, err in failed.items()
            )
            + " -- the lab retries with back-off; free what is named, or close() the cluster"
        )
    nacked = rejected()
    if nacked:
        raise ConfigRejectedError(
            "the latest config push was rejected by "
            + "; ".join(f"{obj}: {reason}" for obj, reason in nacked.items())
            + " -- the proxy keeps running its previous config",
            rejections=dict(nacked),
        )
