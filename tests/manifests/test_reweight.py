"""``routing.reweight``: the one ``set_weights`` rule both backends apply, on plain dicts.

The embedded backend commits its result; the kubernetes backend sends its ``spec.http`` as a
merge patch (``kube/weights.py``). ``tests/contract/`` checks that both clusters behave alike
through ``set_weights``; this file pins the rule itself.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab_app.errors import ConfigError, ManifestError
from lab_app.manifests.routing import reweight, subsets_by_host, virtualservice_shares

SUBSETS = {"demo": {"version-v1", "version-v2", "version-v3"}}


def vs(*dests: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "demo"},
        "spec": {"hosts": ["*"], "http": [{"route": list(dests)}]},
    }


def dest(subset: str, weight: int | None = None, port: int = 8080) -> dict[str, Any]:
    d: dict[str, Any] = {
        "destination": {"host": "demo", "subset": subset, "port": {"number": port}}
    }
    if weight is not None:
        d["weight"] = weight
    return d


def weights_of(obj: dict[str, Any]) -> dict[str, int]:
    return {d["destination"]["subset"]: d["weight"] for d in obj["spec"]["http"][0]["route"]}


def test_the_weights_are_the_whole_split_and_the_input_is_untouched() -> None:
    original = vs(dest("version-v1", 90), dest("version-v2", 10))
    before = copy.deepcopy(original)
    out = reweight(original, SUBSETS, {"version-v2": 100})
    assert weights_of(out) == {"version-v2": 100}  # v1, not named, leaves the route
    assert virtualservice_shares(out) == {"version-v2": 1.0}
    assert original == before
    kept = reweight(original, SUBSETS, {"version-v1": 0, "version-v2": 100})
    assert weights_of(kept) == {"version-v1": 0, "version-v2": 100}  # weight 0 keeps it


def test_a_new_subset_gets_the_route_host_and_port_and_old_ones_keep_their_fields() -> None:
    v1 = dest("version-v1", 100, port=9090)
    v1["headers"] = {"response": {"add": {"x-stable": "1"}}}
    out = reweight(vs(v1), SUBSETS, {"version-v1": 80, "version-v3": 20})
    stable, added = out["spec"]["http"][0]["route"]
    assert stable["headers"] == {"response": {"add": {"x-stable": "1"}}} and stable["weight"] == 80
    assert added == {
        "destination": {"host": "demo", "subset": "version-v3", "port": {"number": 9090}},
        "weight": 20,
    }


def test_hosts_match_by_short_name_or_namespace() -> None:
    fqdn = vs({"destination": {"host": "demo.zdlab.svc.cluster.local", "subset": "version-v1"}})
    assert weights_of(reweight(fqdn, SUBSETS, {"version-v1": 100})) == {"version-v1": 100}
    rules = [{"spec": {"host": "demo", "subsets": [{"name": "version-v1"}]}}]
    assert subsets_by_host(rules, "zdlab") == {"demo": {"version-v1"}}
    other = vs({"destination": {"host": "demo.other.svc.cluster.local", "subset": "version-v1"}})
    with pytest.raises(ManifestError, match="it defines: none"):
        reweight(other, subsets_by_host(rules, "zdlab"), {"version-v1": 100}, namespace="zdlab")


V1 = vs(dest("version-v1", 100))


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ({"version-v9": 10}, ManifestError, "'version-v9' is not defined"),
        ({"version-v1": 100, "version-v9": 0}, ManifestError, "'version-v9' is not defined"),
        ({"version-v1": 101}, ConfigError, "outside 0..100"),
        ({"version-v1": True}, ConfigError, "must be an integer"),
        ({}, ConfigError, "at least one subset"),
        ({"version-v1": 0}, ConfigError, "all weights are 0"),
    ],
)
def test_refusals_name_what_is_wrong(weights: dict[str, int], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        reweight(V1, SUBSETS, weights, where="virtualservice/demo (test)")


def test_structural_refusals_name_the_field() -> None:
    with pytest.raises(ManifestError) as info:
        reweight({"spec": {"http": []}}, SUBSETS, {"version-v1": 1}, where="vs (test)")
    assert info.value.field == "spec.http" and "vs (test)" in str(info.value.source)
    with pytest.raises(ManifestError) as info:
        reweight(V1, SUBSETS, {"version-v9": 1}, where="vs (test)")
    assert info.value.field == "spec.http[0].route.destination.subset"


def test_a_route_over_several_hosts_is_left_alone() -> None:
    mixed = vs(dest("version-v1", 50), {"destination": {"host": "other"}, "weight": 50})
    assert reweight(mixed, SUBSETS, {"version-v9": 10}) == mixed
