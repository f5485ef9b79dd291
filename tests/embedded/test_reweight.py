"""``weights.reweight``: the VirtualService patch of ``set_weights``, on plain dicts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab_app.cluster.embedded.weights import reweight, route_shares
from lab_app.errors import ManifestError

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


def test_sets_named_weights_keeps_the_others_and_copies() -> None:
    original = vs(dest("version-v1", 90), dest("version-v2", 10))
    before = copy.deepcopy(original)
    out = reweight(original, SUBSETS, {"version-v2": 50})
    assert weights_of(out) == {"version-v1": 90, "version-v2": 50}
    assert original == before  # pure: the input is untouched
    assert route_shares(out) == {"version-v1": 90 / 140, "version-v2": 50 / 140}


def test_a_new_subset_is_added_with_the_host_and_port_of_the_route() -> None:
    out = reweight(
        vs(dest("version-v1", 100, port=9090)), SUBSETS, {"version-v1": 80, "version-v3": 20}
    )
    added = out["spec"]["http"][0]["route"][1]
    assert added == {
        "destination": {"host": "demo", "subset": "version-v3", "port": {"number": 9090}},
        "weight": 20,
    }


def test_hosts_match_by_short_name() -> None:
    out = reweight(
        vs({"destination": {"host": "demo.zdlab.svc.cluster.local", "subset": "version-v1"}}),
        SUBSETS,
        {"version-v1": 100},
    )
    assert weights_of(out) == {"version-v1": 100}


V1 = vs(dest("version-v1", 100))
UNWEIGHTED = vs(dest("version-v1"), dest("version-v2", 0))
ALL_ZERO = vs(dest("version-v1", 0), dest("version-v2", 5))


@pytest.mark.parametrize(
    ("obj", "weights", "field"),
    [
        (V1, {"version-v9": 10}, "spec.http[0].route.destination.subset"),
        (V1, {"version-v1": 101}, "weights['version-v1']"),
        (V1, {"version-v1": True}, "weights['version-v1']"),
        (V1, {}, "weights"),
        (UNWEIGHTED, {"version-v2": 0}, "spec.http[0].route[0].weight"),
        (ALL_ZERO, {"version-v2": 0}, "spec.http[0].route[*].weight"),
        ({"spec": {"http": []}}, {"version-v1": 1}, "spec.http"),
    ],
)
def test_refused_patches_name_the_field(
    obj: dict[str, Any], weights: dict[str, int], field: str
) -> None:
    with pytest.raises(ManifestError) as info:
        reweight(obj, SUBSETS, weights, where="virtualservice/demo (test)")
    assert info.value.field == field
    assert "virtualservice/demo (test)" in str(info.value.source)


def test_a_route_over_several_hosts_is_left_alone() -> None:
    mixed = vs(dest("version-v1", 50), {"destination": {"host": "other"}, "weight": 50})
    assert reweight(mixed, SUBSETS, {"version-v9": 10}) == mixed
