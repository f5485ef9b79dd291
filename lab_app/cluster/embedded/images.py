"""Container images for the embedded backend: immutable, content-addressed code snapshots.

Why: a rollout is a change of the pod template's *image*. If pods ran the working tree's
code, "v1" and "v2" would be the same program and editing a file would silently change
running pods. So ``build`` copies ``lab_app/service/`` into
``<images_dir>/<digest[:16]>/lab_app/service/`` (plus a minimal ``lab_app/__init__.py`` and
``build_info.json`` with the version and image id) and never touches it again. The digest is
a sha256 over the version and every source file, so v1 and v2 are different images even from
the same code, and rebuilding unchanged code gives the same digest.

References look like ``zdlab/demo:v2@sha256:<64 hex>``. A manifest's ``zdlab/demo:v2`` is a
tag: it resolves to the most recent build of that version, built on demand if there is none.
Pods run ``python -m lab_app.service`` with the snapshot directory as working directory and
first on ``PYTHONPATH``, so the snapshot's ``lab_app`` wins over the installed one while the
venv's fastapi/uvicorn stay importable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lab_app.errors import ConfigError, ManifestError

REPOSITORY = "zdlab/demo"
SERVICE_SOURCE = Path(__file__).resolve().parents[2] / "service"
_VERSION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REF_RE = re.compile(
    r"^(?:(?:docker\.io/)?(?:library/)?)?(?P<repo>[a-z0-9./_-]+?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?$"
)
_IGNORED = ("__pycache__", ".pytest_cache")


@dataclass(frozen=True)
class Image:
    """One build: where its files are and what it is called."""

    version: str
    digest: str  # 64 hex digits
    root: Path  # goes first on PYTHONPATH
    built_at: float

    @property
    def image_id(self) -> str:
        return f"sha256:{self.digest}"

    @property
    def ref(self) -> str:
        return f"{REPOSITORY}:{self.version}@sha256:{self.digest}"

    @property
    def short(self) -> str:
        return f"{REPOSITORY}:{self.version}@{self.digest[:12]}"


def _source_files(source: Path) -> list[Path]:
    files = [
        p
        for p in source.rglob("*")
        if p.is_file()
        and not any(part in _IGNORED for part in p.relative_to(source).parts)
        and p.suffix not in (".pyc", ".pyo")
        and p.name != "build_info.json"
    ]
    return sorted(files, key=lambda p: p.relative_to(source).as_posix())


def content_digest(version: str, source: Path = SERVICE_SOURCE) -> str:
    """sha256 over the version and each file's relative path and bytes."""
    h = hashlib.sha256()
    h.update(b"zdlab-image-v1\0" + version.encode() + b"\0")
    for path in _source_files(source):
        h.update(path.relative_to(source).as_posix().encode() + b"\0")
        data = path.read_bytes()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


class ImageStore:
    """The embedded backend's image registry (a directory of snapshots)."""

    def __init__(self, root: Path, source: Path = SERVICE_SOURCE) -> None:
        self.root = root
        self.source = source
        self._by_digest: dict[str, Image] = {}
        self._latest: dict[str, Image] = {}
        self._lock = asyncio.Lock()

    def images(self) -> list[Image]:
        return sorted(self._by_digest.values(), key=lambda i: i.built_at)

    async def build(self, version: str) -> Image:
        """Snapshot the service code as ``version``; the file copy runs in a thread."""
        if not _VERSION_RE.match(version or ""):
            raise ConfigError(
                f"image version {version!r} is not a valid tag (letters, digits, '_', '.', '-')"
            )
        if not (self.source / "__main__.py").is_file():
            raise ConfigError(f"no demo service to build: {self.source}/__main__.py is missing")
        async with self._lock:
            image = await asyncio.to_thread(self._build_sync, version)
            self._by_digest[image.digest] = image
            self._latest[version] = image
            return image

    def _build_sync(self, version: str) -> Image:
        digest = content_digest(version, self.source)
        root = self.root / digest[:16]
        if not (root / "lab_app" / "service" / "build_info.json").is_file():
            tmp = self.root / f".{digest[:16]}.{time.monotonic_ns()}.tmp"
            pkg = tmp / "lab_app"
            shutil.copytree(
                self.source, pkg / "service", ignore=shutil.ignore_patterns(*_IGNORED, "*.pyc")
            )
            (pkg / "__init__.py").write_text(
                '"""zdlab image snapshot: only the demo service is in here."""\n'
            )
            info = {"version": version, "image_id": f"sha256:{digest}"}
            (pkg / "service" / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
            for p in tmp.rglob("*"):  # read-only files, like an image layer
                if p.is_file():
                    p.chmod(0o444)
            try:
                tmp.rename(root)
            except OSError:  # built concurrently by someone else: keep theirs
                _rmtree(tmp)
        return Image(version=version, digest=digest, root=root, built_at=time.time())

    async def resolve(self, ref: str, *, source: str = "", field: str = "") -> Image:
        """Turn a manifest's image reference into a build (building a tag on demand)."""
        m = _REF_RE.match(ref.strip()) if isinstance(ref, str) else None
        if not m or m.group("repo") != REPOSITORY:
            raise ManifestError(
                f"image {ref!r} is not one the embedded backend can run; use "
                f"{REPOSITORY}:<version> (built by build_image) or a reference it returned",
                source=source,
                field=field,
            )
        digest, tag = m.group("digest"), m.group("tag")
        if digest:
            image = self._by_digest.get(digest)
            if image is None or (tag and image.version != tag):
                raise ManifestError(
                    f"image {ref!r} was not built in this lab (known: "
                    f"{', '.join(i.short for i in self.images()) or 'none'})",
                    source=source,
                    field=field,
                )
            return image
        version = tag or "latest"
        image = self._latest.get(version)
        if image is None:
            image = await self.build(version)
        return image

    def cleanup(self) -> None:
        if self.root.exists():
            _rmtree(self.root)


def _rmtree(path: Path) -> None:
    """Remove a snapshot (its files are read-only, its directories are not)."""
    shutil.rmtree(path, ignore_errors=True)
