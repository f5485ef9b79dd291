"""Istio fidelity of validation: deprecated API versions Istio still serves are accepted with a
warning, removed Kubernetes APIs stay refused, and routes to undefined subsets are listed
(IST0101) rather than refused, except by the strict check."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_app.errors import ManifestError
from lab_app.manifests import (
    MANIFESTS_DIR,
    ManifestWarning,
    check_routes,
    deprecated_api,
    load_documents,
    load_manifests,
    route_problems,
)

ORIGINAL = Path(__file__).parent / "data" / "original-demo"


def test_the_original_demos_v1alpha3_files_load_with_a_warning_each() -> None:
    with pytest.warns(ManifestWarning) as record:
        docs = load_documents(ORIGINAL)
    assert sorted(d.kind for d in docs) == ["DestinationRule", "Gateway", "VirtualService"]
    assert {d.api_version for d in docs} == {"networking.istio.io/v1alpha3"}
    messages = [str(w.message) for w in record if w.category is ManifestWarning]
    assert len(messages) == 3
    assert all("use networking.istio.io/v1" in m for m in messages)
    vs = next(d for d in docs if d.kind == "VirtualService")
    assert vs.obj["spec"]["http"][0]["retries"] == {"attempts": 3, "perTryTimeout": "2s"}
    assert route_problems([vs], [d for d in docs if d.kind == "DestinationRule"]) == []


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1"])
def test_deprecated_istio_versions_name_v1(version: str) -> None:
    obj = {"apiVersion": f"networking.istio.io/{version}", "kind": "Gateway"}
    message = deprecated_api(obj)
    assert message is not None and message.endswith("use networking.istio.io/v1")
    assert deprecated_api({**obj, "apiVersion": "networking.istio.io/v1"}) is None
    assert deprecated_api({"apiVersion": "apps/v1", "kind": "Deployment"}) is None


def test_unknown_istio_version_and_removed_kubernetes_apis_stay_refused() -> None:
    gateway = (MANIFESTS_DIR / "istio" / "gateway.yaml").read_text()
    with pytest.raises(ManifestError, match="unknown Istio API version") as info:
        load_manifests(gateway.replace("networking.istio.io/v1\n", "networking.istio.io/v2\n"))
    assert info.value.field == "apiVersion"
    hpa = (MANIFESTS_DIR / "hpa.yaml").read_text()
    for old, since in (("autoscaling/v2beta1", "1.25"), ("autoscaling/v2beta2", "1.26")):
        with pytest.raises(ManifestError, match=f"since Kubernetes {since}") as info:
            load_manifests(hpa.replace("autoscaling/v2", old))
        assert info.value.field == "apiVersion" and "use autoscaling/v2" in str(info.value)


def test_route_problems_list_ist0101_and_check_routes_stays_strict() -> None:
    (vs,) = load_manifests(MANIFESTS_DIR / "istio" / "virtualservice-v1-v2.yaml")
    (dr,) = load_manifests(MANIFESTS_DIR / "istio" / "destinationrule.yaml")
    for route in vs["spec"]["http"]:
        route["route"][1]["destination"]["subset"] = "version-v4"
    problems = route_problems([vs], [dr])
    assert [p.field for p in problems] == [
        "spec.http[0].route[1].destination.subset",
        "spec.http[1].route[1].destination.subset",
    ]
    p = problems[0]
    assert (p.virtualservice, p.host, p.subset) == (
        "zero-downtime-rollingupdate",
        "zero-downtime-rollingupdate",
        "version-v4",
    )
    assert p.known == ("version-v1", "version-v2", "version-v3")
    assert p.analyze_message == (
        "Referenced host+subset in destinationrule not found: "
        '"zero-downtime-rollingupdate+version-v4"'
    )
    assert "IST0101" in p.message and "503 NC" in p.message
    with pytest.raises(ManifestError, match="make before break") as info:
        check_routes([vs], [dr])
    assert info.value.field == "spec.http[0].route[1].destination.subset"
    # no DestinationRule at all: a problem too (unless it may exist elsewhere)
    assert len(route_problems([vs], [])) == 4
    assert route_problems([vs], [], require_destinationrule=False) == []
    # a mirror to an undefined subset is IST0101 "mirror+subset"
    vs["spec"]["http"][1]["mirror"] = {"host": "zero-downtime-rollingupdate", "subset": "v9"}
    mirror = [p for p in route_problems([vs], [dr]) if p.mirror]
    assert mirror and mirror[0].analyze_message.startswith("Referenced mirror+subset")
