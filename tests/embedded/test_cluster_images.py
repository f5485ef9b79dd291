"""Image builds: immutable, content-addressed snapshots of the service code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab_app.cluster.embedded.images import ImageStore
from lab_app.errors import ManifestError


async def test_versions_are_distinct_immutable_builds(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    v1 = await store.build("v1")
    v1_again = await store.build("v1")
    v2 = await store.build("v2")
    assert v1.digest == v1_again.digest != v2.digest
    assert v1.ref == f"zdlab/demo:v1@sha256:{v1.digest}"
    info = json.loads((v2.root / "lab_app" / "service" / "build_info.json").read_text())
    assert info == {"version": "v2", "image_id": f"sha256:{v2.digest}"}
    assert (v1.root / "lab_app" / "__init__.py").is_file()
    # the snapshot's lab_app wins over the installed one
    out = subprocess.run(
        [sys.executable, "-c", "import lab_app.service.config as c; print(c.BUILD_INFO_PATH)"],
        env={"PYTHONPATH": str(v2.root), "PATH": "/usr/bin:/bin"},
        cwd=v2.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(v2.root / "lab_app" / "service" / "build_info.json")


async def test_tags_resolve_to_the_latest_build_and_unknown_images_fail(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    built = await store.resolve("zdlab/demo:v3")  # built on demand
    assert built.version == "v3"
    assert (await store.resolve(built.ref)).digest == built.digest
    with pytest.raises(ManifestError) as err:
        await store.resolve("nginx:latest", source="d.yaml", field="spec.x.image")
    assert err.value.field == "spec.x.image" and "d.yaml" in str(err.value)
    with pytest.raises(ManifestError):
        await store.resolve("zdlab/demo:v3@sha256:" + "0" * 64)
