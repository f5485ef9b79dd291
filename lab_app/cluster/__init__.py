"""Backends the lab can roll out to; ``connect()`` picks one.

``connect("embedded")`` (the default, also chosen by ``ZDLAB_BACKEND``) runs pods as local
processes behind a real Envoy. ``connect("kubernetes")`` drives a real cluster with Istio.
"""

from __future__ import annotations

import os
from typing import Any

from lab_app.cluster.base import Cluster, PodInfo
from lab_app.cluster.events import Event, EventKind
from lab_app.errors import ConfigError

BACKENDS = ("embedded", "kubernetes")


async def connect(backend: str | None = None, **options: Any) -> Cluster:
    """Return a started cluster of the chosen backend."""
    name = (backend or os.environ.get("ZDLAB_BACKEND") or "embedded").strip().lower()
    if name in ("kube", "k8s"):
        name = "kubernetes"
    if name == "embedded":
        from lab_app.cluster.embedded import EmbeddedCluster

        return await EmbeddedCluster.start(**options)
    if name == "kubernetes":
        from lab_app.cluster.kube import KubeCluster

        return await KubeCluster.start(**options)
    raise ConfigError(f"backend {name!r} is not one of {', '.join(BACKENDS)} (ZDLAB_BACKEND)")


__all__ = ["BACKENDS", "Cluster", "Event", "EventKind", "PodInfo", "connect"]
