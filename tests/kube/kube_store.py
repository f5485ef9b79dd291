"""A stateful kube-apiserver (1.34) for the fake server: objects, versions, apply, watches.

Mounted on ``FakeApiServer`` (``fake_api.store = ObjectStore()``), it answers every path no
test registered a canned answer for, so the real ``kubernetes`` client meets the server
behaviour the lab's backend depends on, each imitating upstream:

* **resourceVersion**: one cluster-wide counter (etcd's revision), bumped by every write and
  returned in the object; a write whose ``metadata.resourceVersion`` is not the current
  one is ``409 Conflict`` "the object has been modified" (optimistic concurrency); a write
  that changes nothing is not a write (no new version, no watch event);
* **generation**: starts at 1, bumped when anything but metadata and status changes;
  status is written only through ``write_status`` (the controllers' ``/status`` writes);
* **server-side apply** (``PATCH`` ``application/apply-patch+yaml``): ``fieldManager``
  required (422), creates a missing object (201), owns fields per manager in
  ``managedFields``, ``409 Conflict`` with ``details.causes`` per contested field unless
  ``force=true`` (see ``kube_fields``); merge and strategic-merge patches and PUT are
  updates that take over the fields they change; ``force`` on them is a 422;
* **watches**: events after the requested ``resourceVersion`` (or the current objects as
  ADDED without one), ``BOOKMARK`` events every ``bookmark_interval`` seconds with
  ``allowWatchBookmarks=true``, the stream ends at ``timeoutSeconds``; history is the last
  ``history`` events (etcd compaction), and a watch from a version older than that gets
  ``410 Gone`` reason ``Expired`` "too old resource version", as an ``ERROR`` event in a
  200 stream (the watch cache's way) or, with ``gone_as="status"``, as the HTTP answer;
* **lists** carry the current resourceVersion; label and field selectors (``=``, ``!=``);
* **pod logs** (``GET pods/NAME/log``, text): the text a test gave with ``set_log``,
  ``tailLines``, ``container`` (required when the pod has several; 400 otherwise, as
  upstream), ``previous=true`` served only when the container's status has a
  ``lastState.terminated`` with a containerID, else the kubelet's 400 "previous terminated
  container "C" in pod "P" not found";
* **namespace deletion** removes everything in the namespace (the namespace controller's
  work, done at once here).

Tests drive the rest of the world (kubelet, controllers) with ``put``/``write_status``/
``delete``, and the network with ``hold_watches``/``release_watches``/``drop_watches``.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from kube_apiserver import Recorded, Reply, Stream
from kube_fields import FieldManagers, changed_paths, merge_patch, selected
from kube_podlog import PodLogs

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

# plural -> (group, kind, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "namespaces": ("", "Namespace", False),
    "pods": ("", "Pod", True),
    "events": ("", "Event", True),
    "configmaps": ("", "ConfigMap", True),
    "services": ("", "Service", True),
    "endpointslices": ("discovery.k8s.io", "EndpointSlice", True),
    "deployments": ("apps", "Deployment", True),
    "replicasets": ("apps", "ReplicaSet", True),
    "horizontalpodautoscalers": ("autoscaling", "HorizontalPodAutoscaler", True),
    "gateways": ("networking.istio.io", "Gateway", True),
    "virtualservices": ("networking.istio.io", "VirtualService", True),
    "destinationrules": ("networking.istio.io", "DestinationRule", True),
}
VERSIONS = {"": "v1", "discovery.k8s.io": "v1", "apps": "v1", "autoscaling": "v2"}
Key = tuple[str, str, str]  # plural, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class Target:
    plural: str
    namespace: str  # "" for cluster-scoped kinds and all-namespace lists
    name: str = ""
    sub: str = ""  # subresource: scale, status


@dataclass(frozen=True)
class Change:
    rv: int
    plural: str
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]


def parse_path(path: str) -> Target | None:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        rest = parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        rest = parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, plural, tail = rest[1], rest[2], rest[3:]
    else:
        ns, plural, tail = "", rest[0], rest[1:]
    return Target(plural, ns, tail[0] if tail else "", tail[1] if len(tail) > 1 else "")


def status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def invalid_patch(problem: str) -> Reply:
    """422 Invalid for the PatchOptions of a request (kube-apiserver's wording)."""
    return Reply(422, status(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {problem}'))


def resource(plural: str) -> str:
    """``deployments.apps``: how upstream names a resource in messages."""
    group = KINDS[plural][0]
    return f"{plural}.{group}" if group else plural


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class ObjectStore:
    """Objects by (plural, namespace, name), a change log, and the HTTP semantics above."""

    def __init__(
        self,
        *,
        history: int = 1000,
        bookmark_interval: float = 1.0,
        gone_as: str = "event",
        max_watch_seconds: float = 60.0,
    ) -> None:
        self.history = history
        self.bookmark_interval = bookmark_interval
        self.gone_as = gone_as
        self.max_watch_seconds = max_watch_seconds
        self._objects: dict[Key, dict[str, Any]] = {}
        self._managers: dict[Key, FieldManagers] = {}
        self._log: deque[Change] = deque()
        self._rv = 100
        self._compacted = 100  # changes up to this version are no longer kept
        self._cond = threading.Condition()
        self._epoch = 0  # bumped by drop_watches: open streams end
        self._flowing = threading.Event()  # cleared by hold_watches
        self._flowing.set()
        self._closed = False
        self.logs = PodLogs()  # what the kubelets would answer for pods/NAME/log
        self.expired: list[str] = []  # resourceVersions answered 410, for assertions
        self.bookmarks: list[tuple[str, int]] = []  # (plural, version) sent, for assertions

    # --- what tests use to play the rest of the cluster --------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, plural: str, name: str, namespace: str = "zdlab") -> dict[str, Any] | None:
        with self._cond:
            found = self._objects.get(self._key(plural, namespace, name))
            return copy.deepcopy(found)

    def put(
        self, obj: dict[str, Any], plural: str, *, manager: str = "kube-controller-manager"
    ) -> dict[str, Any]:
        """Create or replace an object as a controller or the kubelet would, status included."""
        meta = obj.get("metadata") or {}
        key = self._key(plural, meta.get("namespace", "zdlab"), meta["name"])
        with self._cond:
            current = self._objects.get(key)
            return self._write(key, current, copy.deepcopy(obj), manager, keep_status=False)

    def write_status(
        self, plural: str, name: str, new_status: dict[str, Any], namespace: str = "zdlab"
    ) -> dict[str, Any]:
        """A controller's ``/status`` write: a new version, the generation unchanged."""
        key = self._key(plural, namespace, name)
        with self._cond:
            current = self._objects[key]
            updated = {**copy.deepcopy(current), "status": copy.deepcopy(new_status)}
            return self._commit(key, updated, "MODIFIED")

    def delete(self, plural: str, name: str, namespace: str = "zdlab") -> None:
        key = self._key(plural, namespace, name)
        with self._cond:
            self._remove(key)

    def set_log(self, pod: str, text: str, **options: Any) -> None:
        """What the kubelet logged for ``pod`` (``kube_podlog.PodLogs.set``)."""
        with self._cond:
            self.logs.set(pod, text, **options)

    def compact(self) -> None:
        """Forget every change so far (etcd compaction): older watches get 410 Gone."""
        with self._cond:
            self._log.clear()
            self._compacted = self._rv

    def drop_watches(self) -> None:
        """End every open watch stream, as when the connection to the server breaks."""
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def hold_watches(self) -> None:
        """Drop the open watches and keep new ones waiting until ``release_watches``."""
        self._flowing.clear()
        self.drop_watches()

    def release_watches(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._flowing.set()

    # --- HTTP --------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply | Stream:
        target = parse_path(request.path)
        if target is None or target.plural not in KINDS:
            return Reply(404, status(404, "NotFound", "the server could not find the resource"))
        query = request.query
        if request.method == "GET" and not target.name:
            if query.get("watch") in ("true", "1"):
                return self._watch(target, query)
            return Reply(200, self._list(target, query))
        with self._cond:
            if request.method == "GET":
                return self._read(target, query)
            if request.method == "DELETE":
                return self._delete(target)
            body = request.body
            if isinstance(body, str):  # YAML apply configuration
                body = yaml.safe_load(body)
            if request.method == "POST":
                return self._create(target, body, self._manager(request))
            if request.method == "PUT":
                return self._update(target, body, self._manager(request))
            if request.method == "PATCH":
                return self._patch(target, body, request)
        return Reply(405, status(405, "MethodNotAllowed", f"{request.method} is not supported"))

    @staticmethod
    def _manager(request: Recorded) -> str:
        agent = request.headers.get("user-agent", "unknown")
        return request.query.get("fieldManager") or agent.split("/", 1)[0]

    def _key(self, plural: str, namespace: str, name: str) -> Key:
        return (plural, namespace if KINDS[plural][2] else "", name)

    def _not_found(self, target: Target) -> Reply:
        return Reply(
            404,
            status(
                404,
                "NotFound",
                f'{resource(target.plural)} "{target.name}" not found',
                name=target.name,
                kind=target.plural,
            ),
        )

    def _list(self, target: Target, query: dict[str, str]) -> dict[str, Any]:
        group, kind, _ = KINDS[target.plural]
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (plural, ns, _), obj in sorted(self._objects.items())
                if plural == target.plural and (not target.namespace or ns == target.namespace)
                if selected(obj, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            ]
            version = str(self._rv)
        api_version = f"{group}/{VERSIONS.get(group, 'v1')}" if group else "v1"
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    def _read(self, target: Target, query: dict[str, str]) -> Reply:
        obj = self._objects.get(self._key(target.plural, target.namespace, target.name))
        if obj is None:
            return self._not_found(target)
        if target.sub == "scale":
            return Reply(200, self._scale_of(obj))
        if target.sub == "log" and target.plural == "pods":
            return self.logs.answer(target.namespace, obj, query)
        return Reply(200, copy.deepcopy(obj))

    @staticmethod
    def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
        }

    def _delete(self, target: Target) -> Reply:
        key = self._key(target.plural, target.namespace, target.name)
        if key not in self._objects:
            return self._not_found(target)
        if target.plural == "namespaces":  # the namespace controller empties it first
            for inner in [k for k in self._objects if k[1] == target.name]:
                self._remove(inner)
            self.logs.forget(target.name)
        self._remove(key)
        return Reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _no_namespace(self, target: Target) -> Reply | None:
        """Creating in a namespace that does not exist is a 404 naming the namespace."""
        if not KINDS[target.plural][2] or ("namespaces", "", target.namespace) in self._objects:
            return None
        message = f'namespaces "{target.namespace}" not found'
        return Reply(404, status(404, "NotFound", message, name=target.namespace))

    def _create(self, target: Target, body: dict[str, Any], manager: str) -> Reply:
        name = (body.get("metadata") or {}).get("name", "")
        key = self._key(target.plural, target.namespace, name)
        if key in self._objects:
            message = f'{resource(target.plural)} "{name}" already exists'
            return Reply(409, status(409, "AlreadyExists", message, name=name))
        missing = self._no_namespace(target)
        if missing:
            return missing
        return Reply(201, self._write(key, None, body, manager))

    def _precondition(
        self, target: Target, body: dict[str, Any], current: dict[str, Any]
    ) -> Reply | None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {resource(target.plural)} "{target.name}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again"
            )
            return Reply(409, status(409, "Conflict", message, name=target.name))
        return None

    def _update(self, target: Target, body: dict[str, Any], manager: str) -> Reply:
        key = self._key(target.plural, target.namespace, target.name)
        current = self._objects.get(key)
        if current is None:
            return self._not_found(target)
        refused = self._precondition(target, body, current)
        return refused or Reply(200, self._write(key, current, body, manager))

    def _patch(self, target: Target, body: Any, request: Recorded) -> Reply:
        content_type = request.headers.get("content-type", "").split(";")[0]
        force = request.query.get("force") in ("true", "1")
        if content_type == APPLY:
            return self._apply(target, body, request.query.get("fieldManager", ""), force)
        if content_type not in (MERGE, STRATEGIC):
            message = (
                "the body of the request was in an unknown format - accepted media types "
                f"include: {APPLY}, {MERGE}, {STRATEGIC}"
            )
            return Reply(415, status(415, "UnsupportedMediaType", message))
        if force:
            return invalid_patch("force: Forbidden: may not be specified for non-apply patch")
        key = self._key(target.plural, target.namespace, target.name)
        current = self._objects.get(key)
        if current is None:
            return self._not_found(target)
        refused = self._precondition(target, body, current)
        if refused:
            return refused
        if target.sub == "scale":
            body = {"spec": {"replicas": ((body or {}).get("spec") or {}).get("replicas")}}
        patched = merge_patch(current, body, strategic=content_type == STRATEGIC)
        written = self._write(key, current, patched, self._manager(request))
        return Reply(200, self._scale_of(written) if target.sub == "scale" else written)

    def _apply(self, target: Target, body: dict[str, Any], manager: str, force: bool) -> Reply:
        if not manager:
            return invalid_patch("fieldManager: Required value: is required for apply patch")
        key = self._key(target.plural, target.namespace, target.name)
        current = self._objects.get(key)
        refused = (
            self._precondition(target, body, current)
            if current is not None
            else self._no_namespace(target)
        )
        if refused:
            return refused
        config = copy.deepcopy(body)
        config.pop("status", None)
        (config.get("metadata") or {}).pop("resourceVersion", None)
        managers = self._managers.get(key, FieldManagers()).copy()
        merged, conflicts = managers.apply(manager, current or {}, config, force=force)
        if conflicts and not force:
            return Reply(409, self._conflict(conflicts))
        for field in ("apiVersion", "kind"):
            merged[field] = config.get(field, merged.get(field))
        written = self._write(key, current, merged, manager, managers=managers)
        return Reply(200 if current else 201, written)

    @staticmethod
    def _conflict(conflicts: list[tuple[str, str]]) -> dict[str, Any]:
        """k8s.io/apiserver's ``NewConflictError``: one cause per field, then the message."""
        causes = [
            {"type": "FieldManagerConflict", "message": f"conflict with {who}", "field": field}
            for field, who in conflicts
        ]
        listed = "; ".join(f"{c['message']}: {c['field']}" for c in causes)
        count = f"{len(causes)} conflict" + ("s" if len(causes) > 1 else "")
        return status(409, "Conflict", f"Apply failed with {count}: {listed}", causes=causes)

    # --- writes ------------------------------------------------------------------------
    def _write(
        self,
        key: Key,
        current: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        *,
        keep_status: bool = True,
        managers: FieldManagers | None = None,
    ) -> dict[str, Any]:
        """Store ``new`` (server-set metadata kept), record field owners, bump versions."""
        _plural, namespace, name = key
        old_meta = (current or {}).get("metadata") or {}
        meta = dict(new.get("metadata") or {})
        meta["name"] = name
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or _now()
        meta.pop("managedFields", None)
        new = {**new, "metadata": meta}
        if keep_status and current is not None:
            new["status"] = copy.deepcopy(current.get("status"))
            if new["status"] is None:
                del new["status"]
        elif keep_status:
            new.pop("status", None)
        if managers is None:  # an update: it owns what it changed
            managers = self._managers.get(key, FieldManagers()).copy()
            changed = changed_paths(current or {}, new)
            managers.record_update(manager, changed, str(new.get("apiVersion", "")))
        generation = int(old_meta.get("generation") or 0)
        if current is None or _spec_of(current) != _spec_of(new):
            generation += 1
        meta["generation"] = generation
        meta["managedFields"] = managers.entries(_now())
        if current is not None and _same(current, new):
            return copy.deepcopy(current)  # a no-op write: no new version, no event
        self._managers[key] = managers
        return self._commit(key, new, "MODIFIED" if current is not None else "ADDED")

    def _commit(self, key: Key, obj: dict[str, Any], change: str) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = obj
        self._record(key, change, obj)
        return copy.deepcopy(obj)

    def _remove(self, key: Key) -> None:
        obj = self._objects.pop(key)
        self._managers.pop(key, None)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._record(key, "DELETED", obj)

    def _record(self, key: Key, change: str, obj: dict[str, Any]) -> None:
        self._log.append(Change(self._rv, key[0], key[1], change, copy.deepcopy(obj)))
        while len(self._log) > self.history:
            self._compacted = self._log.popleft().rv
        self._cond.notify_all()

    # --- watches -----------------------------------------------------------------------
    def _expired(self, since: int) -> dict[str, Any]:
        self.expired.append(str(since))
        message = f"too old resource version: {since} ({self._compacted + 1})"
        return status(410, "Expired", message)

    def _watch(self, target: Target, query: dict[str, str]) -> Reply | Stream:
        self._flowing.wait(30)  # held: the request waits like one to an unreachable server
        done = threading.Event()
        done.set()  # the stream's own generator decides when it ends
        group, kind, _ = KINDS[target.plural]
        api_version = f"{group}/{VERSIONS.get(group, 'v1')}" if group else "v1"
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = min(float(query.get("timeoutSeconds") or 1800), self.max_watch_seconds)
        requested = query.get("resourceVersion", "")
        with self._cond:
            initial: list[dict[str, Any]] = []
            if requested in ("", "0"):  # "start at most recent": current objects as ADDED
                start = self._rv
                for (plural, ns, _), obj in sorted(self._objects.items()):
                    if plural != target.plural or (target.namespace and ns != target.namespace):
                        continue
                    if selected(obj, labels, fields):
                        initial.append({"type": "ADDED", "object": copy.deepcopy(obj)})
            else:
                start = int(requested)
                if start < self._compacted:
                    gone = self._expired(start)
                    if self.gone_as == "status":
                        return Reply(410, gone)
                    return Stream([{"type": "ERROR", "object": gone}], hold=done)
            epoch = self._epoch

        def matches(change: Change) -> bool:
            if change.plural != target.plural:
                return False
            if target.namespace and change.namespace != target.namespace:
                return False
            return selected(change.obj, labels, fields)

        def lines() -> Iterator[dict[str, Any]]:
            yield from initial
            position = start
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                gone: dict[str, Any] | None = None
                with self._cond:
                    while True:
                        if self._closed or epoch != self._epoch:
                            return
                        if position < self._compacted:  # fell behind the kept history
                            gone = self._expired(position)
                            break
                        pending = [c for c in self._log if c.rv > position]
                        now = time.monotonic()
                        if pending or now >= deadline or (bookmarks and now >= next_bookmark):
                            break
                        wake = min(deadline, next_bookmark) if bookmarks else deadline
                        self._cond.wait(wake - now)
                    if gone is None and not pending and now >= deadline:
                        return
                    position = self._rv
                if gone is not None:
                    yield {"type": "ERROR", "object": gone}
                    return
                for change in pending:
                    if matches(change):
                        yield {"type": change.type, "object": change.obj}
                if bookmarks and time.monotonic() >= next_bookmark:
                    self.bookmarks.append((target.plural, position))
                    yield {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": kind,
                            "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(position)},
                        },
                    }
                    next_bookmark = time.monotonic() + self.bookmark_interval

        return Stream(lines(), hold=done)


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal but for managedFields' timestamps and the version: upstream skips the write."""

    def bare(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"}
            for entry in meta.get("managedFields") or []
        ]
        return {**obj, "metadata": meta}

    return bare(old) == bare(new)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
