"""What progressive delivery needs from a cluster beyond ``lab_app.cluster.base.Cluster``.

A cutover reads the gateway (``proxy_config``, ``proxy_stats``, ``config_settled``), moves
weights (``set_weights``) and scales the retired version (``scale``): all ``Cluster``
methods. One more is optional: ``deployment_status``, which only the embedded backend has,
lets the preflight refuse a misspelt ``scale_down`` before any weight changes; on a backend
without it the typo is found when the scale-down runs. Once ``Cluster`` declares it (and the
kubernetes backend implements it), this check becomes an ordinary call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class KnowsDeployments(Protocol):
    """A backend that can describe a Deployment at once (``ConfigError`` naming the known
    ones when it does not exist)."""

    def deployment_status(self, deployment: str) -> Mapping[str, Any]: ...
