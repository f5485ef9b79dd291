"""Moved: ``istioctl proxy-config`` rows live in ``lab_app.cluster.proxyconfig`` (shared by
both backends); this module keeps the old import path working."""

from __future__ import annotations

from lab_app.cluster.proxyconfig import (
    COLUMNS,
    ProxyConfigKind,
    ProxyConfigView,
    proxy_config_view,
)

__all__ = ["COLUMNS", "ProxyConfigKind", "ProxyConfigView", "proxy_config_view"]
