"""Field ownership as kube-apiserver's server-side apply keeps it (``managedFields``).

The fake API server uses this to answer apply requests the way the real one does
(structured-merge-diff, KEP-555), in what the lab's backend depends on:

* every manager owns a set of field paths, recorded per (manager, operation) in
  ``metadata.managedFields`` in the ``FieldsV1`` format (``{"f:spec": {"f:replicas": {}}}``);
* an *apply* owns exactly the fields of its configuration; fields it owned before and no
  longer sets are removed from the object unless another manager owns them too;
* an apply that sets a field another manager owns to a *different* value is a conflict
  (409, one cause per field) unless ``force`` is set, which takes the field over; setting
  the *same* value shares ownership, as upstream;
* an *update* (PUT, merge or strategic-merge patch) takes every field it changed from
  whoever owned it, never conflicting.

Also here: the merge patches of updates, and label/field selectors of lists and watches.

Simplification: lists are atomic (``x-kubernetes-list-type: atomic``); upstream merges
``containers``, ``ports``... by key. The backend never relies on per-item list ownership.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

Path = tuple[str, ...]

# metadata fields the server sets or identifies objects by: never "owned" by a manager
UNOWNED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)


def leaves(obj: Any, prefix: Path = ()) -> Iterator[Path]:
    """The field paths an object sets: each scalar, list (atomic) and empty map."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from leaves(value, (*prefix, str(key)))
    else:
        yield prefix


def owned_paths(obj: dict[str, Any]) -> set[Path]:
    """The paths of ``obj`` a manager can own: not apiVersion/kind/status or identity."""
    paths = set()
    for path in leaves(obj):
        if not path or path[0] in ("apiVersion", "kind", "status"):
            continue
        if path[0] == "metadata" and (len(path) < 2 or path[1] in UNOWNED_METADATA):
            continue
        paths.add(path)
    return paths


_MISSING = object()


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def set_path(obj: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        child = obj.get(key)
        if not isinstance(child, dict):
            child = obj[key] = {}
        obj = child
    obj[path[-1]] = copy.deepcopy(value)


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Remove one field and the maps it leaves empty."""
    parents = []
    node: Any = obj
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        parents.append((node, key))
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, key in reversed(parents):
        if parent[key] == {}:
            del parent[key]
        else:
            break


def changed_paths(before: dict[str, Any], after: dict[str, Any]) -> set[Path]:
    """Ownable paths whose value an update set or changed (removed ones are dropped)."""
    return {p for p in owned_paths(after) if get_path(before, p) != get_path(after, p)}


def overlaps(a: Path, b: Path) -> bool:
    """One path is the other or contains it (a map replaced by a scalar, or the reverse)."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """``{("spec", "replicas")}`` -> ``{"f:spec": {"f:replicas": {}}}`` (FieldsV1)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def dotted(path: Path) -> str:
    """How the API server names a field in conflict messages: ``.spec.replicas``."""
    return "".join(f".{key}" for key in path)


Manager = tuple[str, str]  # (name, operation): upstream's manager identity


def shown(manager: Manager, api_version: str) -> str:
    """How a conflict names its manager: ``"kubectl-edit" using apps/v1`` for an update
    (k8s.io/apiserver fieldmanager ``printManager``, time left out of the identity)."""
    name, operation = manager
    return f'"{name}" using {api_version}' if operation == "Update" else f'"{name}"'


class FieldManagers:
    """The owned paths of one object per manager identity, in insertion order.

    The identity is (name, operation), as upstream: ``zdlab`` applying and ``zdlab``
    patching are two managers, and the patch's fields conflict with the next apply.
    """

    def __init__(self) -> None:
        self.owners: dict[Manager, set[Path]] = {}
        self.versions: dict[Manager, str] = {}

    def copy(self) -> FieldManagers:
        other = FieldManagers()
        other.owners = {key: set(paths) for key, paths in self.owners.items()}
        other.versions = dict(self.versions)
        return other

    def owners_of(self, path: Path, *, besides: Manager) -> list[Manager]:
        return [
            manager
            for manager, paths in self.owners.items()
            if manager != besides and any(overlaps(path, p) for p in paths)
        ]

    def release(self, paths: set[Path], *, keep: Manager) -> None:
        """Every manager but ``keep`` gives up ``paths`` (and what they overlap)."""
        for manager, owned in self.owners.items():
            if manager != keep:
                owned.difference_update({p for p in owned if any(overlaps(p, q) for q in paths)})
        self.owners = {key: paths for key, paths in self.owners.items() if paths}

    def record_update(self, name: str, changed: set[Path], api_version: str) -> None:
        if not changed:
            return
        manager = (name, "Update")
        self.release(changed, keep=manager)
        self.owners.setdefault(manager, set()).update(changed)
        self.versions[manager] = api_version

    def apply(
        self, name: str, live: dict[str, Any], config: dict[str, Any], *, force: bool
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Merge an apply configuration into ``live``: (new object, conflicts).

        ``conflicts`` lists (field, manager as upstream shows it) pairs; when there are any
        and ``force`` is not set the caller must refuse the request and drop this copy.
        """
        manager = (name, "Apply")
        wanted = owned_paths(config)
        contested = {p for p in wanted if get_path(live, p) != get_path(config, p)}
        conflicts = [
            (dotted(path), shown(other, self.versions.get(other, "")))
            for path in sorted(contested)  # same value: ownership is shared, not contested
            for other in self.owners_of(path, besides=manager)
        ]
        if conflicts and not force:
            return live, conflicts
        self.release(contested, keep=manager)
        merged = copy.deepcopy(live)
        for path in self.owners.get(manager, set()) - wanted:  # dropped: remove if unshared
            if not self.owners_of(path, besides=manager):
                remove_path(merged, path)
        for path in wanted:
            set_path(merged, path, get_path(config, path))
        self.owners[manager] = wanted
        self.versions[manager] = str(config.get("apiVersion", ""))
        return merged, conflicts

    def entries(self, when: str) -> list[dict[str, Any]]:
        """``metadata.managedFields`` as the API server returns it."""
        return [
            {
                "manager": name,
                "operation": operation,
                "apiVersion": self.versions.get((name, operation), ""),
                "time": when,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(paths),
            }
            for (name, operation), paths in self.owners.items()
        ]


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    """RFC 7386 merge patch; ``strategic`` also merges lists of named maps by ``name``
    (the patchMergeKey of containers, volumes, env...), as ``kubectl set image`` needs."""
    if not isinstance(patch, dict):
        if strategic and isinstance(patch, list) and isinstance(target, list):
            named = all(isinstance(i, dict) and "name" in i for i in [*target, *patch])
            if named:
                merged = [copy.deepcopy(i) for i in target]
                for item in patch:
                    index = next((n for n, i in enumerate(merged) if i["name"] == item["name"]), -1)
                    if index < 0:
                        merged.append(copy.deepcopy(item))
                    else:
                        merged[index] = merge_patch(merged[index], item, strategic)
                return merged
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def selected(obj: dict[str, Any], labels: str, fields: str) -> bool:
    meta = obj.get("metadata") or {}
    have = {**(meta.get("labels") or {})}
    field_values = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
    for selector, values in ((labels, have), (fields, field_values)):
        for term in filter(None, selector.split(",")):
            if "!=" in term:
                key, value = term.split("!=", 1)
                if values.get(key) == value:
                    return False
            else:
                key, value = term.replace("==", "=").split("=", 1)
                if values.get(key) != value:
                    return False
    return True
