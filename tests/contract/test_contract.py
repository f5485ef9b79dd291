"""The same calls give the same results and the same errors on both backends.

Every test runs twice (``conftest.cluster``): on the embedded backend and on the kubernetes
backend against the fake API server. Where they used to differ (``set_weights`` with
unnamed or missing subsets, deleting a missing object, the error a method raises), the
shared rule now lives in one place (``lab_app.manifests.routing.reweight``,
``lab_app.errors``) and this file is its contract; ``base.Cluster`` documents it per method.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab_app.cluster.base import Cluster
from lab_app.cluster.events import EventKind
from lab_app.errors import ConfigError, LabError, ManifestError, NotFoundError
from tests.helpers import manifest

APP = "zero-downtime-rollingupdate"


async def _routes(c: Any) -> None:
    """The DestinationRule (v1, v2, v3) and the 90/10 VirtualService of notebook 05."""
    for name in ("istio/destinationrule.yaml", "istio/gateway.yaml"):
        await c.apply(manifest(name))
    await c.apply(manifest("istio/virtualservice-v1-v2.yaml"))


def _last_weights(c: Any) -> dict[str, Any]:
    changed = [e for e in c.events() if e.kind == EventKind.WEIGHTS_CHANGED]
    assert changed, "no WeightsChanged event"
    return dict(changed[-1].data)


async def test_both_implement_the_whole_protocol(cluster: Any) -> None:
    assert isinstance(cluster, Cluster)
    assert cluster.backend in ("embedded", "kubernetes") and cluster.namespace == "zdlab"
    event = cluster.note("contract check", step=1)
    assert event.kind == EventKind.NOTE and event in cluster.events()


async def test_set_weights_is_the_whole_split(cluster: Any) -> None:
    await _routes(cluster)
    await cluster.set_weights(APP, {"version-v2": 100})  # v1, not named, leaves the routes
    data = _last_weights(cluster)
    assert data["weights"] == {"version-v2": 100} and data["shares"] == {"version-v2": 1.0}
    await cluster.set_weights(APP, {"version-v1": 0, "version-v2": 100})  # 0 keeps v1 listed
    assert _last_weights(cluster)["shares"] == {"version-v1": 0.0, "version-v2": 1.0}


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ({"version-v1": 100, "version-v9": 0}, ManifestError, "'version-v9' is not defined"),
        ({"version-v9": 50, "version-v1": 50}, ManifestError, "make before break"),
        ({"version-v1": 0, "version-v2": 0}, ConfigError, "all weights are 0"),
        ({"version-v1": 101}, ConfigError, "outside 0..100"),
        ({}, ConfigError, "at least one subset"),
    ],
)
async def test_set_weights_refuses_alike(
    cluster: Any, weights: dict[str, int], error: type, match: str
) -> None:
    await _routes(cluster)
    with pytest.raises(error, match=match):
        await cluster.set_weights(APP, weights)
    assert not [e for e in cluster.events() if e.kind == EventKind.WEIGHTS_CHANGED]


async def test_missing_objects(cluster: Any) -> None:
    with pytest.raises(NotFoundError, match="virtualservice/nope"):
        await cluster.set_weights("nope", {"version-v1": 100})
    with pytest.raises(NotFoundError, match="deployment/nope"):
        await cluster.scale("nope", 1)
    with pytest.raises(NotFoundError, match="deployment/nope"):
        await cluster.set_image("nope", "zdlab/demo:v2")
    with pytest.raises(NotFoundError, match="pod/nope"):
        await cluster.logs("nope")
    assert await cluster.delete("configmap/nope") == []  # --ignore-not-found


@pytest.mark.parametrize("replicas", [-1, True, 1.5, "2"])
async def test_scale_checks_its_argument_first(cluster: Any, replicas: Any) -> None:
    await cluster.apply(manifest("configmap.yaml"))
    with pytest.raises(ConfigError, match="replicas must be an integer >= 0"):
        await cluster.scale(APP, replicas)


async def test_every_error_is_a_lab_error() -> None:
    for error in (ConfigError, ManifestError, NotFoundError):
        assert issubclass(error, LabError)
