"""Backends the lab can roll out to; ``connect()`` picks one.

``connect("embedded")`` (the default, also chosen by ``ZDLAB_BACKEND``) runs pods as local
processes behind a real Envoy. ``connect("kubernetes")`` drives a real cluster with Istio.

The embedded backend imitates given releases: ``connect("embedded", istio="1.28",
kubernetes="1.34")`` (the defaults: the current releases). What depends on them (native or
classic sidecars, istiod's default retries, ...) is ``cluster.versions``, a
``lab_app.cluster.versions.VersionProfile``. A real cluster runs the releases installed on it,
so the kubernetes backend refuses these options.
"""

from __future__ import annotations

import os
from typing import Any

from lab_app.cluster.base import Cluster, PodInfo
from lab_app.cluster.events import Event, EventKind
from lab_app.cluster.versions import VersionProfile
from lab_app.errors import ConfigError

BACKENDS = ("embedded", "kubernetes")
# options of the embedded backend's version profile (lab_app.cluster.versions)
VERSION_OPTIONS = ("istio", "kubernetes", "sidecar_mode")


async def connect(backend: str | None = None, **options: Any) -> Cluster:
    """Return a started cluster of the chosen backend."""
    name = (backend or os.environ.get("ZDLAB_BACKEND") or "embedded").strip().lower()
    if name in ("kube", "k8s"):
        name = "kubernetes"
    if name == "embedded":
        from lab_app.cluster.embedded import EmbeddedCluster

        return await EmbeddedCluster.start(**options)
    if name == "kubernetes":
        chosen = sorted(k for k in VERSION_OPTIONS if options.get(k) is not None)
        if chosen:
            raise ConfigError(
                f"{', '.join(chosen)}: the kubernetes backend uses the releases installed on the "
                "cluster (see `kubectl version`, `istioctl version`); choose the sidecar mode "
                "per pod with the annotation sidecar.istio.io/nativeSidecar, or drop the option"
            )
        options = {k: v for k, v in options.items() if k not in VERSION_OPTIONS}
        from lab_app.cluster.kube import KubeCluster

        return await KubeCluster.start(**options)
    raise ConfigError(f"backend {name!r} is not one of {', '.join(BACKENDS)} (ZDLAB_BACKEND)")


__all__ = [
    "BACKENDS",
    "VERSION_OPTIONS",
    "Cluster",
    "Event",
    "EventKind",
    "PodInfo",
    "VersionProfile",
    "connect",
]
