"""An async client for one Envoy's admin API (127.0.0.1 only).

The admin API is the lab's window into the data plane: the xDS pusher confirms each file it
writes through the ``update_success`` / ``update_rejected`` counters, sidecar drains watch
``downstream_cx_active``, and ``proxy_config`` (the lab's ``istioctl proxy-config``) reads
``/config_dump`` and ``/clusters``.

One ``httpx.AsyncClient`` is kept per event loop: notebooks and tests may drive the same
Envoy from different loops, and an httpx connection pool must not cross loops.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from lab_app.errors import LabError


@dataclass(frozen=True)
class UpdateCounts:
    """The xDS update counters of one subscription (``<prefix>.update_*``)."""

    success: int = 0
    rejected: int = 0
    failure: int = 0
    empty: int = 0


UpdateOutcome = Literal["accepted", "rejected"]


def subscription(kind: Literal["lds", "cds", "rds", "eds"], name: str = "") -> str:
    """The stat prefix of an xDS subscription: ``("eds", CLUSTER)`` -> ``cluster.CLUSTER``."""
    prefixes = {
        "lds": "listener_manager.lds",
        "cds": "cluster_manager.cds",
        "rds": f"*rds.{name}",
        "eds": f"cluster.{name}",
    }
    if kind not in prefixes or (kind in ("rds", "eds") and not name):
        raise ValueError(f"unknown subscription {kind!r} {name!r} (lds, cds, rds NAME, eds NAME)")
    return prefixes[kind]


class EnvoyAdmin:
    """Talks to ``http://127.0.0.1:PORT`` (Envoy's admin listener)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            # A client from another (maybe closed) loop is dropped, not awaited: its loop is gone.
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self.timeout, trust_env=False
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self._http().get(path, params=params)
        except httpx.HTTPError as exc:
            raise LabError(f"Envoy admin {self.base_url}{path}: {exc!r}") from exc

    async def post(self, path: str, params: dict[str, Any] | None = None) -> str:
        """POST to a mutating endpoint (``/drain_listeners``, ``/healthcheck/fail``, ...)."""
        try:
            resp = await self._http().post(path, params=params)
        except httpx.HTTPError as exc:
            raise LabError(f"Envoy admin POST {self.base_url}{path}: {exc!r}") from exc
        if resp.status_code != 200:
            raise LabError(
                f"Envoy admin POST {path} answered {resp.status_code}: {resp.text[:200]}"
            )
        return resp.text

    async def ready(self) -> bool:
        """True when ``/ready`` answers 200 (LIVE: initial xDS loaded, listeners up)."""
        try:
            resp = await self._http().get("/ready", timeout=1.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def stats(self, filter: str | None = None) -> dict[str, int | float]:
        """Counters and gauges as ``{name: value}`` (``filter`` is Envoy's regex filter)."""
        params: dict[str, Any] = {"format": "json"}
        if filter:
            params["filter"] = filter
        resp = await self.get("/stats", params)
        out: dict[str, int | float] = {}
        for item in resp.json().get("stats", []):
            if "value" in item and "name" in item:
                value = item["value"]
                if isinstance(value, int | float):
                    out[item["name"]] = value
        return out

    async def counter(self, name: str) -> int:
        """One counter or gauge by exact name; 0 when it does not exist (yet)."""
        values = await self.stats(filter="^" + re.escape(name) + "$")
        return int(values.get(name, 0))

    async def clusters(self) -> dict[str, Any]:
        """``/clusters?format=json``: per-endpoint health flags and counters."""
        dump: dict[str, Any] = (await self.get("/clusters", {"format": "json"})).json()
        return dump

    async def config_dump(
        self, resource: str | None = None, include_eds: bool = False
    ) -> dict[str, Any]:
        """``/config_dump``; ``resource`` e.g. ``dynamic_route_configs``."""
        params: dict[str, Any] = {}
        if resource:
            params["resource"] = resource
        if include_eds:
            params["include_eds"] = ""
        dump: dict[str, Any] = (await self.get("/config_dump", params)).json()
        return dump

    async def listener_addresses(self) -> dict[str, tuple[str, int]]:
        """Listener name -> (address, bound port); tells the real port of a ``port_value: 0``."""
        data = (await self.get("/listeners", {"format": "json"})).json()
        out: dict[str, tuple[str, int]] = {}
        for status in data.get("listener_statuses", []):
            sock = status.get("local_address", {}).get("socket_address", {})
            out[status.get("name", "")] = (sock.get("address", ""), int(sock.get("port_value", 0)))
        return out

    async def downstream_active(self) -> tuple[int, int]:
        """(open downstream connections, requests in flight), summed over all listeners.

        What ``EXIT_ON_ZERO_ACTIVE_CONNECTIONS`` waits on. Admin's own connection is not
        counted (it lives under ``listener.admin`` / ``http.admin``).
        """
        values = await self.stats(filter=r"downstream_(cx|rq)_active$")

        def total(scope: str, gauge: str) -> int:
            return sum(
                int(v)
                for k, v in values.items()
                if k.startswith(f"{scope}.")
                and not k.startswith(f"{scope}.admin.")
                and k.endswith(f".{gauge}")
            )

        return total("listener", "downstream_cx_active"), total("http", "downstream_rq_active")

    async def update_counts(self, *stat_prefixes: str) -> dict[str, UpdateCounts]:
        """The update counters of several subscriptions in one admin call.

        A prefix is e.g. ``listener_manager.lds``, ``cluster_manager.cds``,
        ``cluster.NAME`` (EDS) or ``http.STAT_PREFIX.rds.ROUTE_NAME``; for RDS the ``http.*``
        part may be given as ``*rds.ROUTE_NAME`` and the counters of every HTTP connection
        manager sharing that route configuration are summed.
        """
        if not stat_prefixes:
            return {}
        alternatives = "|".join(_prefix_regex(p) for p in stat_prefixes)
        values = await self.stats(
            filter=rf"^({alternatives})\.update_(success|rejected|failure|empty)$"
        )
        out: dict[str, UpdateCounts] = {}
        for prefix in stat_prefixes:
            rx = re.compile(
                "^" + _prefix_regex(prefix) + r"\.update_(success|rejected|failure|empty)$"
            )
            sums = {"success": 0, "rejected": 0, "failure": 0, "empty": 0}
            for name, value in values.items():
                m = rx.match(name)
                if m:
                    sums[m.group(1)] += int(value)
            out[prefix] = UpdateCounts(**sums)
        return out

    async def wait_update(
        self, stat_prefix: str, since: UpdateCounts, timeout: float = 5.0, poll: float = 0.002
    ) -> UpdateOutcome:
        """Wait until the subscription counts one more success or rejection than ``since``.

        Raises ``TimeoutError`` if neither moves within ``timeout`` (Envoy did not see the
        file: not an atomic rename, or a wrong directory).
        """
        outcomes = await self.wait_updates({stat_prefix: since}, timeout=timeout, poll=poll)
        return outcomes[stat_prefix]

    async def wait_updates(
        self, since: dict[str, UpdateCounts], timeout: float = 5.0, poll: float = 0.002
    ) -> dict[str, UpdateOutcome]:
        """``wait_update`` for several subscriptions at once (one admin call per poll)."""
        deadline = time.monotonic() + timeout
        pending = dict(since)
        done: dict[str, UpdateOutcome] = {}
        while pending:
            now = await self.update_counts(*pending)
            for prefix, before in list(pending.items()):
                after = now[prefix]
                if after.rejected > before.rejected or after.failure > before.failure:
                    done[prefix] = "rejected"
                elif after.success > before.success or after.empty > before.empty:
                    done[prefix] = "accepted"
                else:
                    continue
                del pending[prefix]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Envoy {self.base_url} did not report an update of "
                    + ", ".join(sorted(pending))
                    + f" within {timeout:.1f}s"
                )
            await asyncio.sleep(poll)
        return done


def _prefix_regex(prefix: str) -> str:
    if prefix.startswith("*"):
        return r"http\.[^|]*?\." + re.escape(prefix[1:])
    return re.escape(prefix)
