"""Reading manifests: a file, a directory, YAML text, a dict or a list -> validated objects.

See :mod:`lab_app.manifests` for what each source means. Reading keeps where every
object came from (file, document index, the line of each field) in a
:class:`~lab_app.manifests.model.Manifest`, so validation can point at the line; YAML is
read the way the API server decodes it strictly (a duplicate key is an error, not "the
last one wins").
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from lab_app.errors import ManifestError
from lab_app.manifests.model import Manifest, ManifestWarning, format_path, is_istio, is_kind_config
from lab_app.manifests.route_check import route_problems
from lab_app.manifests.validate import validate
from lab_app.paths import MANIFESTS_DIR, REPO_ROOT

YAML_SUFFIXES = (".yaml", ".yml")


def load_manifests(source: Any) -> list[dict[str, Any]]:
    """Load and validate ``source``; return the objects as plain dicts (see module doc)."""
    return [m.obj for m in load_documents(source)]


def load_documents(source: Any) -> list[Manifest]:
    """Load and validate ``source``; return :class:`Manifest` wrappers (see module doc)."""
    manifests = list(_read(source))
    for m in manifests:
        validate(m)
    virtualservices = [m for m in manifests if is_istio(m.obj, "VirtualService")]
    destinationrules = [m for m in manifests if is_istio(m.obj, "DestinationRule")]
    if virtualservices and destinationrules:
        for problem in route_problems(
            virtualservices, destinationrules, require_destinationrule=False
        ):
            warnings.warn(f"{problem.source}: {problem.message}", ManifestWarning, stacklevel=2)
    return manifests


def validate_object(obj: Mapping[str, Any], *, source: str = "<dict>") -> None:
    """Validate one object (raises ``ManifestError``); for code that builds or edits objects."""
    if not isinstance(obj, Mapping):
        raise ManifestError(f"expected a mapping, got {type(obj).__name__}", source=source)
    validate(Manifest(obj=dict(obj), source=source))


def _read(source: Any) -> Iterator[Manifest]:
    if isinstance(source, Manifest):
        yield source
        return
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        yield from _read_path(_resolve(Path(source)))
    elif isinstance(source, str):
        yield from _parse_yaml(source, "<text>")
    elif isinstance(source, Mapping):
        yield from _from_object(source, "<dict>", 0)
    elif isinstance(source, Iterable) and not isinstance(source, bytes | bytearray):
        for i, item in enumerate(source):
            if isinstance(item, Manifest):
                yield item
            elif isinstance(item, Mapping):
                yield from _from_object(item, "<list>", i)
            else:
                raise ManifestError(
                    f"item {i} is a {type(item).__name__}, expected a mapping", source="<list>"
                )
    else:
        raise ManifestError(
            f"cannot load manifests from a {type(source).__name__}: give a path, YAML text,"
            " a dict or a list of dicts"
        )


def _looks_like_path(text: str) -> bool:
    if "\n" in text or not text.strip():
        return False
    stripped = text.strip()
    return not (stripped.startswith(("{", "[", "---", "#")) or ": " in stripped)


def _resolve(path: Path) -> Path:
    if path.exists():
        return path
    if path.is_absolute():
        raise ManifestError("no such file or directory", source=str(path))
    for base in (REPO_ROOT, MANIFESTS_DIR):
        if (base / path).exists():
            return base / path
    places = ", ".join(str(p) for p in dict.fromkeys((Path.cwd(), REPO_ROOT, MANIFESTS_DIR)))
    raise ManifestError(f"no such file or directory (looked in {places})", source=str(path))


def _label(path: Path) -> str:
    resolved = path.resolve()
    for base in (REPO_ROOT, Path.cwd().resolve()):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
    return str(path)


def _read_path(path: Path) -> Iterator[Manifest]:
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        files = [
            p for p in files if not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
    else:
        files = [path]
    for file in files:
        label = _label(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read: {exc}", source=label) from exc
        yield from _parse_yaml(text, label)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that refuses duplicate keys, as the API server's strict decoding does.

    PyYAML keeps the last of two equal keys silently, so a pasted ``port:`` twice would
    quietly drop one; ``kubectl apply`` reports it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable key: the base class reports it
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


def _parse_yaml(text: str, label: str) -> Iterator[Manifest]:
    loader = _Loader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                obj = loader.construct_document(node) if node is not None else None
            except _DuplicateKey as dup:
                err = ManifestError(
                    f"duplicate key {dup.key!r} at line {dup.line} (first at line {dup.first})",
                    source=label,
                )
                err.line, err.document = dup.line, index  # type: ignore[attr-defined]
                raise err from None
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
                problem = getattr(exc, "problem", None) or str(exc)
                context = getattr(exc, "context", None)
                where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
                detail = f"{problem} ({context})" if context else problem
                err = ManifestError(f"invalid YAML at {where}{detail}", source=label)
                err.line = mark.line + 1 if mark else None  # type: ignore[attr-defined]
                err.document = index  # type: ignore[attr-defined]
                raise err from None
            if obj is None:
                index += 1
                continue
            if not isinstance(obj, dict):
                raise ManifestError(
                    f"document {index + 1} is a {type(obj).__name__}, expected a mapping"
                    " with apiVersion, kind and metadata",
                    source=label,
                )
            lines: dict[str, int] = {}
            _walk_lines(node, [], lines)
            manifest = Manifest(obj=obj, source=label, index=index, lines=lines)
            index += 1
            if is_kind_config(obj):
                continue
            yield manifest
    finally:
        loader.dispose()


def _walk_lines(node: yaml.Node, path: list[str | int], out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = [*path, key_node.value]
            out.setdefault(format_path(child), key_node.start_mark.line + 1)
            _walk_lines(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = [*path, i]
            out.setdefault(format_path(child), item.start_mark.line + 1)
            _walk_lines(item, child, out)


def _from_object(obj: Mapping[str, Any], label: str, index: int) -> Iterator[Manifest]:
    plain = copy.deepcopy(dict(obj))
    if not is_kind_config(plain):
        yield Manifest(obj=plain, source=label, index=index)
