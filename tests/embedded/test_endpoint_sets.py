"""The endpoints controller's computation, without processes: pods + Services -> endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab_app.cluster.embedded.endpoints import diff_endpoints, endpoint_sets, matches

SERVICE = {"spec": {"selector": {"app": "demo"}, "ports": [{"port": 8080}]}}


@dataclass
class FakePod:
    name: str
    pod_port: int = 9000
    labels: dict[str, str] = field(default_factory=lambda: {"app": "demo"})
    ready: bool = True
    terminating: bool = False
    deleted: bool = False


def test_selector_matching() -> None:
    assert matches({"app": "demo"}, {"app": "demo", "version": "v1"})
    assert not matches({"app": "demo", "version": "v2"}, {"app": "demo", "version": "v1"})
    assert not matches({}, {"app": "demo"})  # an empty selector selects nothing


def test_ready_matching_pods_are_endpoints_sorted_by_pod() -> None:
    pods = [
        FakePod("b", 9002),
        FakePod("a", 9001),
        FakePod("other", labels={"app": "other"}),
        FakePod("starting", ready=False),
        FakePod("gone", deleted=True),
    ]
    sets = endpoint_sets(pods, {"svc": SERVICE, "empty": {"spec": {"selector": {}}}})
    assert [(e.pod, e.port, e.ready) for e in sets["svc"]] == [("a", 9001, True), ("b", 9002, True)]
    assert sets["empty"] == []


def test_a_terminating_pod_stays_as_serving_terminating() -> None:
    (ep,) = endpoint_sets([FakePod("old", terminating=True)], {"svc": SERVICE})["svc"]
    assert (ep.ready, ep.serving, ep.terminating) == (False, True, True)


def test_diff_names_added_removed_and_the_kube_proxy_fallback() -> None:
    old, new = FakePod("old"), FakePod("new")
    before = endpoint_sets([old], {"s": SERVICE})["s"]
    assert diff_endpoints(before, endpoint_sets([old], {"s": SERVICE})["s"]) is None

    # old terminating, nothing else ready: removed from the rotation, kept by kube-proxy
    old.terminating = True
    draining = endpoint_sets([old], {"s": SERVICE})["s"]
    change = diff_endpoints(before, draining)
    assert change is not None
    assert (change.added, change.removed, change.kept) == ([], ["old"], frozenset({"old"}))
    assert change.ready_changed

    # a new ready pod: added, and the terminating one is no longer kept
    after = endpoint_sets([old, new], {"s": SERVICE})["s"]
    change = diff_endpoints(draining, after)
    assert change is not None
    assert (change.added, change.removed, change.kept) == (["new"], [], frozenset())


def test_a_port_change_is_a_change_but_not_of_the_ready_set() -> None:
    a = endpoint_sets([FakePod("a", 9001)], {"s": SERVICE})["s"]
    b = endpoint_sets([FakePod("a", 9002)], {"s": SERVICE})["s"]
    change = diff_endpoints(a, b)
    assert change is not None and change.added == change.removed == []
    assert change.ready_changed  # (pod, port, ready) of the ready ones differ
