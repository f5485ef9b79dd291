"""File-based xDS: how the lab plays istiod without a control plane.

Envoy's bootstrap (``bootstrap.py``) reads listeners (LDS) and clusters (CDS) from files; each
HTTP connection manager reads its routes (RDS) from a file of its own, and each EDS cluster its
endpoints. ``XdsPusher`` writes those files.

Facts this relies on (measured with Envoy 1.40, see the shared reference):

- Envoy only notices an *atomic rename* into the watched directory, so every write is a temp
  file in the same directory followed by ``os.replace``.
- Any rename in a watched directory reloads every subscription watching it, so each
  subscription gets a directory of its own (``lds/``, ``cds/``, ``rds/NAME/``, ``eds/NAME/``).
- Invalid content is rejected and Envoy keeps the old config. A rejection is only visible in the
  ``update_rejected`` counters (and a ``Filesystem config update rejected`` log line), so each
  write is confirmed through the admin stats before the next one; a rejected file is put back
  to its last accepted content so that the files on disk always describe what Envoy runs (an
  Envoy restarted from them comes back with the same config).
- A rename is applied in 2 to 7 ms. Realistic propagation delays are the controllers' job.

Order of one push, so no request meets a half-applied config (make before break, like istiod):
EDS of existing clusters -> CDS with the new clusters added (removed ones kept for now) -> RDS
files of route configs no listener uses yet -> LDS -> RDS of route configs in use -> CDS
without the removed clusters.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_app.cluster.embedded.envoy.listeners import HCM_TYPE, TCP_PROXY_TYPE
from lab_app.errors import ConfigError

if TYPE_CHECKING:
    from lab_app.cluster.embedded.envoy.admin import EnvoyAdmin
    from lab_app.cluster.embedded.envoy.snapshot import Snapshot

TYPE_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
TYPE_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
TYPE_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPE_CLA = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

LDS_STAT = "listener_manager.lds"
CDS_STAT = "cluster_manager.cds"
REJECTION_MARK = "config update rejected"


@dataclass
class PushResult:
    """What one push did. ``accepted`` is False if Envoy rejected a file or never saw it."""

    accepted: bool
    took_ms: float
    details: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # subscriptions written, in order
    port_in_use: int | None = None  # a listener could not bind this port

    def __bool__(self) -> bool:
        return self.accepted


def _safe_dir_name(name: str) -> str:
    """A directory name for a resource name like ``outbound|8080|v1|host`` (unique, readable)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "x"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def config_source(path: Path) -> dict[str, Any]:
    """An xDS config source reading ``path``, watching the directory it alone lives in."""
    return {
        "resource_api_version": "V3",
        "path_config_source": {
            "path": str(path),
            "watched_directory": {"path": str(path.parent)},
        },
    }


def _dump(resources: list[dict[str, Any]], type_url: str) -> str:
    items = [{"@type": type_url, **r} for r in resources]
    return json.dumps({"resources": items}, indent=1, sort_keys=True) + "\n"


def _filter_configs(listener: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    """The typed configs of a listener's network filters of these types (mutable references)."""
    out = []
    for chain in [*listener.get("filter_chains", []), listener.get("default_filter_chain") or {}]:
        for flt in chain.get("filters", []):
            cfg = flt.get("typed_config", {})
            if cfg.get("@type") in types:
                out.append(cfg)
    return out


def _hcms(listener: dict[str, Any]) -> list[dict[str, Any]]:
    """The HTTP connection managers' typed configs in a listener (mutable references)."""
    return _filter_configs(listener, HCM_TYPE)


ACCESS_LOG_FORMAT = (
    "%START_TIME% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% "
    "%RESPONSE_CODE_DETAILS% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %DURATION% %UPSTREAM_HOST%\n"
)


def file_access_log(path: Path) -> dict[str, Any]:
    """An access log line per request with what explains a failure (flags, details, attempts)."""
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(path),
            "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
        },
    }


def _access_logging_filters(listener: dict[str, Any]) -> list[dict[str, Any]]:
    """Typed configs of the filters that write access logs (HTTP connection manager, TCP proxy)."""
    return _filter_configs(listener, HCM_TYPE, TCP_PROXY_TYPE)


def _route_names(listeners: list[dict[str, Any]]) -> set[str]:
    return {
        hcm["rds"]["route_config_name"]
        for listener in listeners
        for hcm in _hcms(listener)
        if "rds" in hcm
    }


class XdsPusher:
    """Writes a ``Snapshot`` as xDS files under ``root`` and confirms Envoy accepted them.

    ``admin`` is needed for ``push`` (confirmation); ``log_path`` (Envoy's ``--log-path``)
    lets a rejection carry Envoy's reason.
    """

    def __init__(
        self,
        root: str | Path,
        admin: EnvoyAdmin | None = None,
        log_path: Path | None = None,
        access_log_path: Path | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.admin = admin
        self.log_path = log_path
        self.access_log_path = access_log_path
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._locks = weakref.WeakKeyDictionary()
        self.reset()

    def reset(self) -> None:
        """Forget what Envoy accepted (a new Envoy process starts from empty files)."""
        self._accepted: dict[Path, str] = {}  # file -> content Envoy accepted
        self._clusters: dict[str, dict[str, Any]] = {}  # accepted CDS, by name
        self._listeners: list[dict[str, Any]] = []  # accepted LDS (materialized)

    # --- paths -------------------------------------------------------------------------
    @property
    def lds_path(self) -> Path:
        return self.root / "lds" / "listeners.json"

    @property
    def cds_path(self) -> Path:
        return self.root / "cds" / "clusters.json"

    def rds_path(self, route_name: str) -> Path:
        return self.root / "rds" / _safe_dir_name(route_name) / "routes.json"

    def eds_path(self, cluster_name: str) -> Path:
        return self.root / "eds" / _safe_dir_name(cluster_name) / "endpoints.json"

    def dynamic_resources(self) -> dict[str, Any]:
        """The bootstrap's ``dynamic_resources``: LDS and CDS from this pusher's files."""
        return {
            "lds_config": config_source(self.lds_path),
            "cds_config": config_source(self.cds_path),
        }

    def prepare(self) -> None:
        """Write empty LDS/CDS files so a freshly started Envoy becomes ready (sync, no Envoy)."""
        for path, type_url in ((self.lds_path, TYPE_LISTENER), (self.cds_path, TYPE_CLUSTER)):
            if not path.exists():
                self._write(path, _dump([], type_url))
                self._accepted[path] = _dump([], type_url)

    # --- writing -----------------------------------------------------------------------
    @staticmethod
    def _write(path: Path, content: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        tmp.write_text(content)
        os.replace(tmp, path)  # the atomic rename Envoy watches for

    def materialize(self, snapshot: Snapshot) -> dict[str, Any]:
        """Attach file config sources to a copy of the snapshot; checks references.

        Returns ``{"clusters": {name: cluster}, "listeners": [...], "routes": {name: rc},
        "endpoints": {cluster_name: cla}}``.
        """
        clusters: dict[str, dict[str, Any]] = {}
        endpoints = {cla["cluster_name"]: cla for cla in snapshot.endpoints}
        for src in snapshot.clusters:
            c = copy.deepcopy(src)
            if c.get("type") == "EDS":
                c["eds_cluster_config"] = {"eds_config": config_source(self.eds_path(c["name"]))}
                endpoints.setdefault(c["name"], {"cluster_name": c["name"], "endpoints": []})
            clusters[c["name"]] = c
        stray = sorted(set(endpoints) - {n for n, c in clusters.items() if c.get("type") == "EDS"})
        if stray:
            raise ConfigError(
                f"snapshot has endpoints for unknown EDS clusters: {', '.join(stray)}"
            )
        routes = {rc["name"]: rc for rc in snapshot.routes}
        listeners = copy.deepcopy(list(snapshot.listeners))
        for listener in listeners:
            if self.access_log_path is not None:
                for cfg in _access_logging_filters(listener):
                    cfg.setdefault("access_log", [file_access_log(self.access_log_path)])
            for hcm in _hcms(listener):
                if "rds" in hcm:
                    name = hcm["rds"]["route_config_name"]
                    if name not in routes:
                        raise ConfigError(
                            f"listener {listener.get('name')!r} uses route config {name!r}, "
                            "which the snapshot does not contain"
                        )
                    hcm["rds"]["config_source"] = config_source(self.rds_path(name))
        return {
            "clusters": clusters,
            "listeners": listeners,
            "routes": routes,
            "endpoints": endpoints,
        }

    # --- pushing -----------------------------------------------------------------------
    def _lock(self) -> asyncio.Lock:
        """One lock per event loop: pushes to one Envoy never interleave."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def push(self, snapshot: Snapshot, timeout: float = 5.0) -> PushResult:
        """Make Envoy run ``snapshot``; return once each changed file is accepted or rejected."""
        if self.admin is None:
            raise ConfigError("XdsPusher.push needs the Envoy's admin client")
        async with self._lock():
            return await self._push(snapshot, timeout)

    async def _push(self, snapshot: Snapshot, timeout: float) -> PushResult:
        m = self.materialize(snapshot)
        start = time.perf_counter()
        result = PushResult(accepted=True, took_ms=0.0)
        log_offset = self._log_size()
        deadline = time.monotonic() + timeout
        active_routes = _route_names(self._listeners)
        new_clusters: dict[str, dict[str, Any]] = m["clusters"]
        removed = [n for n in self._clusters if n not in new_clusters]

        async def step(writes: Sequence[tuple[Path, str, str | None]]) -> bool:
            """Write files; wait for the subscriptions given (None: nothing to wait for)."""
            writes = [w for w in writes if self._accepted.get(w[0]) != w[1]]
            if not writes:
                return True
            assert self.admin is not None
            prefixes = [p for _, _, p in writes if p is not None]
            before = await self.admin.update_counts(*prefixes)
            for path, content, prefix in writes:
                self._write(path, content)
                result.written.append(prefix or str(path.relative_to(self.root)))
            remaining = max(0.05, deadline - time.monotonic())
            try:
                outcomes = await self.admin.wait_updates(before, timeout=remaining)
            except TimeoutError as exc:
                outcomes = {p: "rejected" for p in prefixes}
                result.details.append(str(exc))
            rejected = {p for p, o in outcomes.items() if o == "rejected"}
            restore = [(path, prefix) for path, _, prefix in writes if prefix in rejected]
            for path, content, prefix in writes:
                if prefix not in rejected:
                    self._accepted[path] = content
            if restore:
                await self._restore(restore)
            if rejected:
                result.accepted = False
                result.details.insert(0, "rejected: " + ", ".join(sorted(rejected)))
            return not rejected

        eds_existing = [
            (self.eds_path(n), _dump([cla], TYPE_CLA), f"cluster.{n}")
            for n, cla in m["endpoints"].items()
            if n in self._clusters
        ]
        eds_new = [
            (self.eds_path(n), _dump([cla], TYPE_CLA), None)
            for n, cla in m["endpoints"].items()
            if n not in self._clusters
        ]
        interim = {**{n: self._clusters[n] for n in removed}, **new_clusters}
        cds_interim = _dump(list(interim.values()), TYPE_CLUSTER)
        cds_final = _dump(list(new_clusters.values()), TYPE_CLUSTER)
        rds = {n: _dump([rc], TYPE_ROUTE) for n, rc in m["routes"].items()}
        lds = _dump(m["listeners"], TYPE_LISTENER)

        ok = await step(eds_existing) and await step(eds_new)
        if ok:
            ok = await step([(self.cds_path, cds_interim, CDS_STAT)])
            if ok:
                self._clusters = {**self._clusters, **new_clusters}
                ok = await self._wait_gauge("cluster_manager.warming_clusters", deadline, result)
        if ok:
            ok = await step(
                [(self.rds_path(n), c, None) for n, c in rds.items() if n not in active_routes]
            )
        if ok:
            ok = await step([(self.lds_path, lds, LDS_STAT)])
            if ok:
                self._listeners = m["listeners"]
                ok = await self._wait_gauge(
                    "listener_manager.total_listeners_warming", deadline, result
                )
        if ok:
            ok = await step(
                [(self.rds_path(n), c, f"*rds.{n}") for n, c in rds.items() if n in active_routes]
            )
        if ok and removed:
            ok = await step([(self.cds_path, cds_final, CDS_STAT)])
            if ok:
                self._clusters = dict(new_clusters)
                for name in removed:
                    self._forget(self.eds_path(name))
        result.took_ms = (time.perf_counter() - start) * 1000
        if not result.accepted:
            await self._explain(result, log_offset)
        return result

    async def _wait_gauge(self, name: str, deadline: float, result: PushResult) -> bool:
        """Wait for a warming gauge to reach 0 (new clusters got endpoints, listeners bound)."""
        assert self.admin is not None
        while True:
            if await self.admin.counter(name) == 0:
                return True
            if time.monotonic() > deadline:
                result.accepted = False
                result.details.append(f"{name} still above 0 at the deadline")
                return False
            await asyncio.sleep(0.002)

    async def _restore(self, files: Sequence[tuple[Path, str | None]]) -> None:
        """Put back the last accepted contents so the files describe what Envoy runs.

        Waits for Envoy to reload them, so the reload cannot be mistaken for the outcome of
        the next push.
        """
        assert self.admin is not None
        prefixes = [p for path, p in files if p is not None and path in self._accepted]
        before = await self.admin.update_counts(*prefixes)
        for path, _ in files:
            previous = self._accepted.get(path)
            if previous is not None:
                self._write(path, previous)
            else:
                self._forget(path)
        with contextlib.suppress(TimeoutError):
            await self.admin.wait_updates(before, timeout=2.0)

    def _forget(self, path: Path) -> None:
        self._accepted.pop(path, None)
        with contextlib.suppress(OSError):
            shutil.rmtree(path.parent)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size if self.log_path else 0
        except OSError:
            return 0

    async def _explain(self, result: PushResult, log_offset: int) -> None:
        """Add Envoy's reasons: listener/cluster error states, then the log's rejection lines."""
        assert self.admin is not None
        with contextlib.suppress(Exception):
            dump = await self.admin.config_dump()
            for section in dump.get("configs", []):
                for key in (
                    "dynamic_listeners",
                    "dynamic_active_clusters",
                    "dynamic_warming_clusters",
                ):
                    for item in section.get(key, []) or []:
                        err = item.get("error_state")
                        if err and err.get("details"):
                            result.details.append(f"{item.get('name', '?')}: {err['details']}")
        if self.log_path is not None:
            # Envoy flushes its log every --file-flush-interval-msec (100 ms in the lab).
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                lines = self._log_lines_since(log_offset)
                if lines:
                    result.details.extend(lines)
                    break
                await asyncio.sleep(0.05)
        for line in result.details:
            m = re.search(r"cannot bind '[^']*:(\d+)': Address already in use", line)
            if m:
                result.port_in_use = int(m.group(1))
                break

    def _log_lines_since(self, offset: int) -> list[str]:
        assert self.log_path is not None
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            if REJECTION_MARK in line.lower():
                out.append(line.split("] ", 3)[-1] if "] " in line else line)
        return out
