"""The version profile (lab_app.cluster.versions) and the options that choose it."""

from __future__ import annotations

import pytest

from lab_app.cluster import connect
from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.cluster.embedded.envoy.translate import retry_policy
from lab_app.cluster.versions import profile
from lab_app.errors import ConfigError


def test_defaults_are_the_current_releases_with_native_sidecars() -> None:
    p = profile()
    assert (p.istio_version, p.kubernetes_version) == ("1.28", "1.34")
    assert p.enable_native_sidecars == "auto" and p.default_sidecar_mode == "native"
    assert p.default_retriable_status_codes == () and p.minimum_grace_period == 2.0
    assert profile("v1.28.2", "1.34.1") == p


@pytest.mark.parametrize(
    ("istio", "kubernetes", "mode"),
    [("1.27", "1.33", "native"), ("1.26", "1.34", "classic"), ("1.28", "1.32", "classic")],
)
def test_sidecar_mode_default_follows_enable_native_sidecars_auto(
    istio: str, kubernetes: str, mode: str
) -> None:
    p = profile(istio, kubernetes)
    assert p.default_sidecar_mode == mode
    assert p.sidecar_mode("false") == "classic" and p.sidecar_mode("true") == "native"
    assert p.sidecar_mode(None, mesh="classic") == "classic"
    assert p.sidecar_mode("true", mesh="classic") == "native"  # the annotation wins


def test_503_is_a_default_retriable_status_only_before_istio_1_24() -> None:
    assert profile("1.23").default_retriable_status_codes == (503,)
    assert profile("1.24").default_retriable_status_codes == ()
    old = retry_policy(None, default_status_codes=(503,))
    assert old is not None and old["retriable_status_codes"] == [503]
    new = retry_policy(None)
    assert new is not None and "retriable_status_codes" not in new
    # a VirtualService retryOn replaces the default codes, as ConvertPolicy does
    own = retry_policy({"attempts": 3, "retryOn": "reset"}, default_status_codes=(503,))
    assert own is not None and "retriable_status_codes" not in own


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"istio": "1.21"}, ["istio='1.21'", "older than the lab can model"]),
        ({"kubernetes": "1.29"}, ["kubernetes='1.29'", "older than the lab can model"]),
        ({"istio": "banana"}, ["istio='banana'", "not a version"]),
        ({"kubernetes": 1.3}, ["kubernetes=1.3", "not a version"]),
        ({"istio": "1.99"}, ["istio='1.99'", "not a release the lab knows"]),
        ({"sidecar_mode": "sometimes"}, ["sidecar_mode='sometimes'", "native"]),
    ],
)
def test_bad_versions_are_refused_naming_the_option(
    options: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        EmbeddedCluster(**options)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


async def test_the_cluster_exposes_and_announces_its_versions() -> None:
    async with EmbeddedCluster(istio="1.26", kubernetes="1.33") as c:
        assert c.versions == profile("1.26", "1.33")
        up = [e for e in c.events() if e.obj == "cluster/embedded"]
        assert "Istio 1.26, Kubernetes 1.33" in up[0].message


async def test_the_kubernetes_backend_refuses_version_options() -> None:
    with pytest.raises(ConfigError, match="kubectl version"):
        await connect("kubernetes", istio="1.28")
