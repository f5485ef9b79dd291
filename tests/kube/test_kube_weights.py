"""set_weights' make-before-break validation and the VirtualService patch it sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_app.cluster.kube.weights import validate_weights, weights_patch
from lab_app.errors import ConfigError, LabError

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def virtualservice(host="zero-downtime-rollingupdate"):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "zero-downtime-rollingupdate", "resourceVersion": "42"},
        "spec": {
            "hosts": ["*"],
            "gateways": ["demo-gateway"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {
                                "host": host,
                                "subset": "version-v1",
                                "port": {"number": 8080},
                            },
                            "weight": 90,
                        },
                        {
                            "destination": {
                                "host": host,
                                "subset": "version-v2",
                                "port": {"number": 8080},
                            },
                            "weight": 10,
                            "headers": {"response": {"add": {"x-canary": "1"}}},
                        },
                    ],
                    "retries": {"attempts": 5, "perTryTimeout": "2s"},
                }
            ],
        },
    }


def destinationrule(subsets=("version-v1", "version-v2", "version-v3")):
    return {
        "metadata": {"name": "zero-downtime-rollingupdate"},
        "spec": {
            "host": "zero-downtime-rollingupdate",
            "subsets": [{"name": s, "labels": {"version": s[-2:]}} for s in subsets],
        },
    }


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one subset"),
        ({"version-v1": 0, "version-v2": 0}, "all weights are 0"),
        ({"version-v1": 101}, "outside 0..100"),
        ({"version-v1": -1}, "outside 0..100"),
        ({"version-v1": 50.5}, "must be an integer"),
        ({"version-v1": True}, "must be an integer"),
    ],
)
def test_bad_weights(weights, message):
    with pytest.raises(ConfigError, match=message):
        validate_weights(weights)


def test_patch_moves_weights_and_keeps_everything_else():
    patch = weights_patch(
        virtualservice(), [destinationrule()], {"version-v1": 0, "version-v2": 100}, "zdlab"
    )
    assert patch["metadata"] == {"resourceVersion": "42"}  # a concurrent edit -> 409
    (http,) = patch["spec"]["http"]
    assert http["retries"] == {"attempts": 5, "perTryTimeout": "2s"}
    assert http["route"] == [
        {
            "destination": {
                "host": "zero-downtime-rollingupdate",
                "subset": "version-v1",
                "port": {"number": 8080},
            },
            "weight": 0,
        },
        {
            "destination": {
                "host": "zero-downtime-rollingupdate",
                "subset": "version-v2",
                "port": {"number": 8080},
            },
            "weight": 100,
            "headers": {"response": {"add": {"x-canary": "1"}}},
        },
    ]


def test_a_new_subset_copies_the_first_destination():
    patch = weights_patch(
        virtualservice(), [destinationrule()], {"version-v2": 50, "version-v3": 50}, "zdlab"
    )
    routes = patch["spec"]["http"][0]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in routes] == [
        ("version-v2", 50),
        ("version-v3", 50),
    ]
    assert routes[1]["destination"]["port"] == {"number": 8080}
    assert "headers" not in routes[1]


def test_missing_subset_is_refused_and_named():
    with pytest.raises(LabError) as info:
        weights_patch(
            virtualservice(),
            [destinationrule(("version-v1", "version-v2"))],
            {"version-v1": 50, "version-v3": 50},
            "zdlab",
        )
    message = str(info.value)
    assert "'version-v3'" in message
    assert "make before break" in message
    assert "version-v1, version-v2" in message


def test_a_missing_subset_is_refused_even_at_weight_zero():
    """One rule for both backends (lab_app.manifests.routing.reweight): a named subset must
    exist, whatever its weight; leave it out of the mapping to drop it from the route."""
    with pytest.raises(LabError, match="'version-v3' is not defined"):
        weights_patch(
            virtualservice(),
            [destinationrule(("version-v1",))],
            {"version-v1": 100, "version-v3": 0},
            "zdlab",
        )
    patch = weights_patch(
        virtualservice(), [destinationrule(("version-v1",))], {"version-v1": 100}, "zdlab"
    )
    assert [r["destination"]["subset"] for r in patch["spec"]["http"][0]["route"]] == ["version-v1"]


def test_fqdn_host_matches_a_short_destinationrule_host():
    vs = virtualservice("zero-downtime-rollingupdate.zdlab.svc.cluster.local")
    patch = weights_patch(vs, [destinationrule()], {"version-v1": 10, "version-v2": 90}, "zdlab")
    assert len(patch["spec"]["http"][0]["route"]) == 2
    with pytest.raises(LabError, match="it defines: none"):
        weights_patch(
            virtualservice("zero-downtime-rollingupdate.other.svc.cluster.local"),
            [destinationrule()],
            {"version-v1": 100},
            "zdlab",
        )


def test_with_the_repository_manifests():
    vs_file = MANIFESTS / "istio" / "virtualservice-v1-v2.yaml"
    dr_file = MANIFESTS / "istio" / "destinationrule.yaml"
    if not (vs_file.is_file() and dr_file.is_file()):
        pytest.skip("istio manifests not written yet")
    from lab_app.manifests import load_manifests

    (vs,) = load_manifests(vs_file)
    (dr,) = load_manifests(dr_file)
    patch = weights_patch(vs, [dr], {"version-v1": 50, "version-v2": 50}, "zdlab")
    weights = [r["weight"] for h in patch["spec"]["http"] for r in h["route"]]
    assert weights and set(weights) == {50}
    # the patched object is still a valid VirtualService for the lab's loader
    load_manifests([{**vs, "spec": {**vs["spec"], **patch["spec"]}}, dr])
