"""The object model of a loaded manifest and how a problem in it is located.

A :class:`Manifest` is one object plus where it came from (file, document index, the line
of each field), so every check can raise a :class:`~lab_app.errors.ManifestError` that
names the file, the document, the line and the dotted field path: what a learner needs to
find a typo without reading a traceback. Plain dicts built by code are wrapped with
:func:`as_manifest` so the same messages work for them (without lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab_app.errors import ManifestError
from lab_app.manifests.istio_schema import ISTIO_GROUP
from lab_app.manifests.names import format_ref


class ManifestWarning(UserWarning):
    """A manifest is accepted but uses something deprecated (e.g. Istio ``v1beta1``) or
    references something that does not exist (a subset, like ``istioctl analyze`` IST0101)."""


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes/Istio object and where it came from."""

    obj: dict[str, Any]
    source: str  # file path (relative to the repo when inside it), "<text>", "<dict>", "<list>"
    index: int = 0  # 0-based document index within the source
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def ref(self) -> str:
        """``kind/name`` in lower-case kind, as ``kubectl`` and the lab's events write it."""
        return format_ref(self.kind, self.name)

    def line_of(self, path: str) -> int | None:
        """1-based line of a dotted field path (or of its nearest parent), if known."""
        return _line_for(self.lines, path)


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "containers", 0, "name"]`` -> ``"spec.containers[0].name"``.

    Keys that are not plain identifiers (label keys such as ``app.kubernetes.io/name``)
    are written ``labels["app.kubernetes.io/name"]``.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def as_manifest(item: Mapping[str, Any] | Manifest) -> Manifest:
    """Wrap a plain dict (from code, no file) so errors can still name object and field."""
    return item if isinstance(item, Manifest) else Manifest(obj=dict(item), source="<dict>")


def is_kind_config(obj: Mapping[str, Any]) -> bool:
    """A kind tool config (``kind-cluster.yaml``): configures the tool, never applied."""
    return str(obj.get("apiVersion", "")).startswith("kind.x-k8s.io/")


def is_istio(obj: Mapping[str, Any], kind: str | None = None) -> bool:
    """Whether ``obj`` belongs to networking.istio.io (and is of ``kind``, if given)."""
    group = str(obj.get("apiVersion", "")).partition("/")[0]
    return group == ISTIO_GROUP and (kind is None or obj.get("kind") == kind)


def error_at(m: Manifest, path: str, problem: str) -> ManifestError:
    """A ManifestError for ``problem`` at field ``path`` of ``m``, with object, document, line.

    ``err.line`` (1-based or None) and ``err.document`` (0-based) are set on it.
    """
    where = []
    if m.kind:
        where.append(f"{m.kind} {m.name}".strip())
    if m.index or m.source == "<list>":
        where.append(f"document {m.index + 1}")
    line = m.line_of(path) if path else None
    if line:
        where.append(f"line {line}")
    message = f"{problem} [{', '.join(where)}]" if where else problem
    err = ManifestError(message, source=m.source, field=path)
    err.line = line  # type: ignore[attr-defined]
    err.document = m.index  # type: ignore[attr-defined]
    return err


def _line_for(lines: Mapping[str, int], path: str) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
