"""Bad input gets one clear error naming the file and the field, and leaves nothing running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from cluster_testlib import APP, MANIFESTS, container, descendants, manifest

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.errors import (
    ConfigError,
    EnvoyNotFoundError,
    ManifestError,
    NotFoundError,
    PortInUseError,
)


def _write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


async def _only_base_processes(cluster: EmbeddedCluster) -> None:
    assert set(cluster.processes()) == {"reaper", "gateway"}
    assert await cluster.pods() == []


async def test_typo_unknown_kind_bad_image_are_refused_atomically(
    lab_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    c = lab_cluster
    doc = manifest("deployment.yaml")
    container(doc)["readinessProbe"]["periodSecondz"] = 1
    path = _write(tmp_path, "typo.yaml", doc)
    with pytest.raises(ManifestError) as err:
        await c.apply(path)
    assert "typo.yaml" in str(err.value)
    assert err.value.field == "spec.template.spec.containers[0].readinessProbe.periodSecondz"

    kind = manifest("deployment.yaml")
    kind["kind"] = "Deploymnt"
    with pytest.raises(ManifestError) as err:
        await c.apply(_write(tmp_path, "kind.yaml", kind))
    assert err.value.field == "kind" and "kind.yaml" in str(err.value)

    image = manifest("deployment.yaml")
    container(image)["image"] = "nginx:1.27"
    with pytest.raises(ManifestError) as err:
        await c.apply(_write(tmp_path, "image.yaml", image))
    assert err.value.field == "spec.template.spec.containers[0].image"

    # a valid ConfigMap next to a bad Deployment: neither is applied
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump_all([manifest("configmap.yaml"), doc]))
    with pytest.raises(ManifestError):
        await c.apply(both)
    await _only_base_processes(c)
    # it was never stored: skipped, as `kubectl delete --ignore-not-found` (tests/contract)
    assert await c.delete("configmap/cluster") == []


async def test_routes_and_weights_are_checked_against_the_destination_rule(
    tmp_path: Path,
) -> None:
    # strict_routes=True: routes to undefined subsets are refused (make before break); by
    # default they are applied like Istio does, see test_istio_fidelity.py
    async with EmbeddedCluster(
        strict_routes=True, sidecar_injection=False, crash_backoff_scale=0.05
    ) as c:
        await _routes_and_weights_are_checked(c, tmp_path)


async def _routes_and_weights_are_checked(c: EmbeddedCluster, tmp_path: Path) -> None:
    for name in ("service.yaml", "istio/destinationrule.yaml", "istio/gateway.yaml"):
        await c.apply(manifest(name))
    vs = manifest("istio/virtualservice-v1-v2.yaml")
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = "version-v9"
    with pytest.raises(ManifestError) as err:
        await c.apply(_write(tmp_path, "vs.yaml", vs))
    assert err.value.field == "spec.http[0].route[1].destination.subset"
    assert "vs.yaml" in str(err.value) and "version-v9" in str(err.value)

    await c.apply(MANIFESTS / "istio/virtualservice-v1-v2.yaml")
    with pytest.raises(ManifestError) as err:
        await c.set_weights(APP, {"version-v1": 50, "version-v9": 50})
    assert "version-v9" in str(err.value) and "virtualservice-v1-v2.yaml" in str(err.value)
    assert err.value.field.startswith("spec.http[0]")
    # a bad argument is a ConfigError on both backends (lab_app.manifests.routing)
    with pytest.raises(ConfigError, match="all weights are 0"):
        await c.set_weights(APP, {"version-v1": 0, "version-v2": 0})
    with pytest.raises(ConfigError, match=r"weights\['version-v1'\] = 120 is outside 0..100"):
        await c.set_weights(APP, {"version-v1": 120})
    with pytest.raises(NotFoundError, match="virtualservice/no-such-vs not found"):
        await c.set_weights("no-such-vs", {"version-v1": 100})
    # break before make is refused too: the DR still backs the VirtualService's subsets
    with pytest.raises(ManifestError):
        await c.delete("destinationrule/zero-downtime-rollingupdate")
    # nothing changed: the route still has 90/10
    await c.config_settled()
    rows = (await c.proxy_config("routes")).rows
    assert any("90" in str(r) for r in rows)


async def test_busy_gateway_port_and_missing_envoy_leave_nothing_running() -> None:
    before = {p.pid for p in descendants()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            await EmbeddedCluster.start(gateway_port=port)
    with pytest.raises(EnvoyNotFoundError, match="/nonexistent/envoy"):
        await EmbeddedCluster.start(envoy_bin="/nonexistent/envoy")
    with pytest.raises(ConfigError, match="propagation_delay"):
        await EmbeddedCluster.start(propagation_delay=-1)
    assert {p.pid for p in descendants()} <= before
