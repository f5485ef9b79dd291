"""The deployment controller's arithmetic against Kubernetes' own table tests.

The cases (inputs and expected outputs, not code) are carried over from
k8s.io/kubernetes pkg/controller/deployment/util/deployment_util_test.go
(``TestMaxUnavailable``, ``TestResolveFenceposts``, ``TestNewRSNewReplicas``) and run against
the lab's pure functions in ``lab_app.cluster.embedded.deployments``.
"""

from __future__ import annotations

import pytest

from lab_app.cluster.embedded.deployments import (
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    resolve_fenceposts,
)
from lab_app.cluster.embedded.specs import Strategy

# TestMaxUnavailable: (name, replicas, maxUnavailable, expected); maxSurge is 1 in every case.
MAX_UNAVAILABLE = [
    ("maxUnavailable less than replicas", 10, 5, 5),
    ("maxUnavailable equal replicas", 10, 10, 10),
    ("maxUnavailable greater than replicas", 5, 10, 5),
    ("maxUnavailable with replicas is 0", 0, 10, 0),
    ("maxUnavailable less than replicas with percents", 10, "50%", 5),
    ("maxUnavailable equal replicas with percents", 10, "100%", 10),
    ("maxUnavailable greater than replicas with percents", 5, "100%", 5),
]


@pytest.mark.parametrize(
    ("replicas", "unavailable", "expected"),
    [case[1:] for case in MAX_UNAVAILABLE],
    ids=[case[0] for case in MAX_UNAVAILABLE],
)
def test_max_unavailable(replicas: int, unavailable: int | str, expected: int) -> None:
    strategy = Strategy("RollingUpdate", max_surge=1, max_unavailable=unavailable)
    assert max_unavailable(strategy, replicas) == expected


def test_max_unavailable_with_recreate_strategy() -> None:
    # upstream's case "maxUnavailable with Recreate deployment strategy" (replicas unset)
    for replicas in (0, 1, 5):
        assert max_unavailable(Strategy("Recreate"), replicas) == 0
        assert max_surge(Strategy("Recreate"), replicas) == 0


# TestResolveFenceposts: (maxSurge, maxUnavailable, desired, surge, unavailable, error);
# None is an unset field.
FENCEPOSTS = [
    ("0%", "0%", 0, 0, 1, False),
    ("39%", "39%", 10, 4, 3, False),
    ("oops", "39%", 10, 0, 0, True),
    ("55%", "urg", 10, 0, 0, True),
    (None, "39%", 10, 0, 3, False),
    ("39%", None, 10, 4, 0, False),
    (None, None, 10, 0, 1, False),
]


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "want_surge", "want_unavailable", "error"),
    FENCEPOSTS,
    ids=[str(i) for i in range(len(FENCEPOSTS))],
)
def test_resolve_fenceposts(
    surge: str | None,
    unavailable: str | None,
    desired: int,
    want_surge: int,
    want_unavailable: int,
    error: bool,
) -> None:
    if error:
        with pytest.raises(ValueError, match="IntOrString"):
            resolve_fenceposts(surge, unavailable, desired)
        return
    assert resolve_fenceposts(surge, unavailable, desired) == (want_surge, want_unavailable)


# TestNewRSNewReplicas: (name, strategy type, deployment replicas, new RS replicas, maxSurge,
# expected). maxUnavailable is 1; the only other ReplicaSet has 5 replicas, and the new one is
# not counted among "all" ReplicaSets, as in upstream's test.
NEW_RS_NEW_REPLICAS = [
    ("can not scale up - to newRSReplicas", "RollingUpdate", 1, 5, 1, 5),
    ("scale up - to depReplicas", "RollingUpdate", 6, 2, 10, 6),
    ("recreate - to depReplicas", "Recreate", 3, 1, 1, 3),
]


@pytest.mark.parametrize(
    ("strategy_type", "replicas", "new_replicas", "surge", "expected"),
    [case[1:] for case in NEW_RS_NEW_REPLICAS],
    ids=[case[0] for case in NEW_RS_NEW_REPLICAS],
)
def test_new_rs_new_replicas(
    strategy_type: str, replicas: int, new_replicas: int, surge: int, expected: int
) -> None:
    strategy = Strategy(strategy_type, max_surge=surge, max_unavailable=1)
    assert new_rs_new_replicas(strategy, replicas, [5], new_replicas) == expected


def test_an_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="isn't supported"):
        new_rs_new_replicas(Strategy("BlueGreen"), 3, [3], 0)
