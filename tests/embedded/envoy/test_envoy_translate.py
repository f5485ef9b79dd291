"""Istio -> Envoy translation, without Envoy: names, weights, retries, subsets, defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy_testlib import HOST, destination_rule, gateway, service, virtual_service

from lab_app.cluster.embedded.envoy import (
    Endpoint,
    envoy_cluster_name,
    gateway_snapshot,
    service_fqdn,
    service_proxy_snapshot,
    sidecar_snapshot,
)
from lab_app.cluster.embedded.envoy.translate import MAX_U32, parse_duration, retry_policy
from lab_app.errors import ManifestError

EPS = [
    Endpoint("127.0.0.1", 20001, {"app": "zdr", "version": "v1"}, "v1-a"),
    Endpoint("127.0.0.1", 20002, {"app": "zdr", "version": "v1"}, "v1-b"),
    Endpoint("127.0.0.1", 20003, {"app": "zdr", "version": "v2"}, "v2-a"),
    Endpoint("127.0.0.1", 20004, {"app": "zdr", "version": "v2"}, "v2-b", ready=False),
]


def snap(weights=None, dr=None, **kw):
    return gateway_snapshot(
        gateway=gateway(),
        virtual_services=[virtual_service(weights or {"v1": 90, "v2": 10}, **kw)],
        destination_rules=[dr or destination_rule("v1", "v2", "v3")],
        services=[service()],
        endpoints={"zero-downtime-rollingupdate": EPS},
        listen_port=31380,
    )


def action(s):
    return s.routes[0]["virtual_hosts"][0]["routes"][0]["route"]


def vs_snap(vs, *, endpoints=None, **kw):
    """The gateway snapshot of one VirtualService, subset v1 defined, no endpoints by default."""
    return gateway_snapshot(
        gateway=gateway(),
        virtual_services=[vs],
        destination_rules=[destination_rule("v1")],
        services=[service()],
        endpoints=endpoints or {},
        **kw,
    )


def test_names_follow_istio():
    assert service_fqdn("zero-downtime-rollingupdate") == HOST
    assert service_fqdn("svc.other") == "svc.other.svc.cluster.local"
    assert service_fqdn(HOST) == HOST
    assert envoy_cluster_name(8080, HOST, "version-v1") == f"outbound|8080|version-v1|{HOST}"
    assert envoy_cluster_name(8080, HOST) == f"outbound|8080||{HOST}"
    s = snap()
    assert s.cluster_names() == [
        f"outbound|8080||{HOST}",
        f"outbound|8080|version-v1|{HOST}",
        f"outbound|8080|version-v2|{HOST}",
        f"outbound|8080|version-v3|{HOST}",
    ]
    listener = s.listeners[0]
    assert listener["name"] == "0.0.0.0_80"
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 31380}
    assert s.routes[0]["name"] == "http.80"


def test_fqdn_destination_host_is_the_same_cluster():
    vs = virtual_service({"v1": 100})
    vs["spec"]["http"][0]["route"][0]["destination"]["host"] = HOST
    s = vs_snap(vs, endpoints={HOST: EPS})
    assert action(s)["cluster"] == f"outbound|8080|version-v1|{HOST}"
    assert (
        len(s.load_assignment(f"outbound|8080|version-v1|{HOST}")["endpoints"][0]["lb_endpoints"])
        == 2
    )


def test_weights_become_weighted_clusters_and_zero_weights_are_dropped():
    assert action(snap({"v1": 90, "v2": 10}))["weighted_clusters"]["clusters"] == [
        {"name": f"outbound|8080|version-v1|{HOST}", "weight": 90},
        {"name": f"outbound|8080|version-v2|{HOST}", "weight": 10},
    ]
    # istiod leaves 0-weight destinations out; their clusters still exist (make before break)
    s = snap({"v1": 0, "v2": 100})
    assert action(s)["weighted_clusters"]["clusters"] == [
        {"name": f"outbound|8080|version-v2|{HOST}", "weight": 100}
    ]
    assert f"outbound|8080|version-v1|{HOST}" in s.cluster_names()
    # a single destination routes to one cluster, its weight is irrelevant
    assert action(snap({"v2": 100}))["cluster"] == f"outbound|8080|version-v2|{HOST}"


def test_subsets_filter_endpoints_by_labels_and_readiness():
    s = snap()

    def ports(cluster):
        cla = s.load_assignment(cluster)
        return sorted(
            lb["endpoint"]["address"]["socket_address"]["port_value"]
            for loc in cla["endpoints"]
            for lb in loc["lb_endpoints"]
        )

    assert ports(f"outbound|8080|version-v1|{HOST}") == [20001, 20002]
    assert ports(f"outbound|8080|version-v2|{HOST}") == [20003]  # v2-b is not ready
    assert ports(f"outbound|8080||{HOST}") == [20001, 20002, 20003]
    # no pod of v3: an empty assignment (Envoy then answers 503 UH)
    assert s.load_assignment(f"outbound|8080|version-v3|{HOST}")["endpoints"] == []
    lb = s.load_assignment(f"outbound|8080|version-v1|{HOST}")["endpoints"][0]["lb_endpoints"][0]
    assert lb["endpoint"]["hostname"] == "v1-a"


def test_default_retries_are_istios():
    # istio/istio pilot/pkg/networking/core/route/retry/retry.go DefaultPolicy()
    policy = action(snap())["retry_policy"]
    assert policy["num_retries"] == 2
    assert (
        policy["retry_on"]
        == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    )
    assert "retriable_status_codes" not in policy  # EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY=true
    assert policy["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert policy["host_selection_retry_max_attempts"] == 5
    assert action(snap())["timeout"] == "0s"  # no route timeout unless the VirtualService sets one


def test_virtualservice_retries_override_the_default():
    # the original demo's retries
    retries = {
        "attempts": 5,
        "perTryTimeout": "2s",
        "retryOn": "gateway-error,retriable-4xx,connect-failure,refused-stream",
    }
    policy = action(snap(retries=retries))["retry_policy"]
    assert policy["num_retries"] == 5
    assert policy["per_try_timeout"] == "2s"
    assert policy["retry_on"] == "gateway-error,retriable-4xx,connect-failure,refused-stream"
    assert policy["retry_host_predicate"]  # kept from the default
    assert policy["host_selection_retry_max_attempts"] == 5
    assert "retry_policy" not in action(snap(retries={"attempts": 0}))
    codes = retry_policy({"attempts": 1, "retryOn": "503,connect-failure"})
    assert codes["retry_on"] == "connect-failure,retriable-status-codes"
    assert codes["retriable_status_codes"] == [503]
    assert "retry_host_predicate" not in retry_policy(
        {"attempts": 1, "retryIgnorePreviousHosts": False}
    )
    assert action(snap(timeout="11s"))["timeout"] == "11s"


def test_cluster_defaults_match_istiod():
    c = snap().cluster(f"outbound|8080|version-v1|{HOST}")
    assert c["type"] == "EDS"
    assert c["lb_policy"] == "LEAST_REQUEST"
    assert c["connect_timeout"] == "10s"
    assert c["common_lb_config"] == {}
    assert c["circuit_breakers"]["thresholds"] == [
        {
            "max_connections": MAX_U32,
            "max_pending_requests": MAX_U32,
            "max_requests": MAX_U32,
            "max_retries": MAX_U32,
            "track_remaining": True,
        }
    ]
    opts = c["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert (
        opts["common_http_protocol_options"]["idle_timeout"] == "4s"
    )  # below uvicorn's 5 s keep-alive
    assert "outlier_detection" not in c


def test_traffic_policy_and_subset_override():
    dr = destination_rule(
        "v1",
        "v2",
        traffic_policy={
            "connectionPool": {
                "http": {"idleTimeout": "1h", "maxRetries": 3},
                "tcp": {"connectTimeout": "250ms"},
            },
            "outlierDetection": {
                "consecutive5xxErrors": 5,
                "interval": "1s",
                "baseEjectionTime": "30s",
                "maxEjectionPercent": 100,
            },
        },
    )
    dr["spec"]["subsets"][1]["trafficPolicy"] = {
        "outlierDetection": {"consecutiveGatewayErrors": 2}
    }
    s = snap(dr=dr)
    v1 = s.cluster(f"outbound|8080|version-v1|{HOST}")
    assert v1["connect_timeout"] == "0.25s"
    assert v1["circuit_breakers"]["thresholds"][0]["max_retries"] == 3
    assert (
        v1["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]["common_http_protocol_options"]["idle_timeout"]
        == "3600s"
    )
    assert v1["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 5,
        "enforcing_consecutive_5xx": 100,
        "interval": "1s",
        "base_ejection_time": "30s",
        "max_ejection_percent": 100,
    }
    assert v1["common_lb_config"]["healthy_panic_threshold"] == {"value": 0.0}
    v2 = s.cluster(f"outbound|8080|version-v2|{HOST}")
    assert v2["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_gateway_failure": 2,
        "enforcing_consecutive_gateway_failure": 100,
    }
    assert v2["connect_timeout"] == "0.25s"  # connectionPool block inherited from the top level


def test_matches():
    vs = virtual_service({"v1": 100})
    vs["spec"]["http"][0]["match"] = [
        {"uri": {"prefix": "/k8s"}, "headers": {"x-canary": {"exact": "yes"}}},
        {"uri": {"exact": "/ping"}},
        {"uri": {"regex": "/k8s/.*Task"}, "ignoreUriCase": True},
    ]
    s = vs_snap(vs)
    routes = s.routes[0]["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes] == [
        {"prefix": "/k8s", "headers": [{"name": "x-canary", "string_match": {"exact": "yes"}}]},
        {"path": "/ping"},
        {"safe_regex": {"regex": "/k8s/.*Task"}, "case_sensitive": False},
    ]
    assert s.routes[0]["response_headers_to_add"][0]["header"] == {
        "key": "x-envoy-flags",
        "value": "%RESPONSE_FLAGS%",
    }


def test_virtualservice_bound_to_another_gateway_is_ignored():
    vs = virtual_service({"v1": 100})
    vs["spec"]["gateways"] = ["other-gateway"]
    s = vs_snap(vs)
    assert s.routes[0]["virtual_hosts"] == []


def test_missing_subset_is_an_error_naming_the_field():
    with pytest.raises(ManifestError) as err:
        snap({"v1": 50, "v4": 50})
    assert err.value.source == "virtualservice/zero-downtime-rollingupdate"
    assert err.value.field == "spec.http[0].route[1].destination.subset"
    assert "version-v4" in str(err.value) and "version-v1" in str(err.value)
    # like Istio, on request: the route points at a cluster that does not exist (503 NC)
    s = vs_snap(virtual_service({"v4": 100}), missing_subset="blackhole")
    assert action(s)["cluster"] == f"outbound|8080|version-v4|{HOST}"
    assert f"outbound|8080|version-v4|{HOST}" not in s.cluster_names()


def test_zero_weights_and_unsupported_input_are_errors():
    with pytest.raises(ManifestError, match="sum to 0") as err:
        snap({"v1": 0, "v2": 0})
    assert err.value.field == "spec.http[0].route[*].weight"
    vs = virtual_service({"v1": 100})
    vs["spec"]["http"][0]["match"] = [{"uri": {"suffix": "/x"}}]
    with pytest.raises(ManifestError, match="suffix") as err:
        vs_snap(vs)
    assert err.value.field == "spec.http[0].match[0].uri.suffix"
    with pytest.raises(ManifestError, match="duration") as err:
        snap(retries={"attempts": 2, "perTryTimeout": "2 seconds"})
    assert err.value.field == "spec.http[0].retries.perTryTimeout"
    vs = virtual_service({"v1": 100}, fault={"abort": {"httpStatus": 500}})
    with pytest.raises(ManifestError, match="fault"):
        vs_snap(vs)
    gw = gateway()
    gw["spec"]["servers"][0]["port"]["protocol"] = "HTTPS"
    with pytest.raises(ManifestError, match="HTTPS") as err:
        gateway_snapshot(gateway=gw, virtual_services=[], endpoints={})
    assert err.value.field == "spec.servers[0].port.protocol"
    vs = virtual_service({"v1": 100})
    del vs["spec"]["http"][0]["route"][0]["destination"]["port"]
    with pytest.raises(ManifestError, match="port"):  # no Service given: the port is unknown
        gateway_snapshot(
            gateway=gateway(),
            virtual_services=[vs],
            destination_rules=[destination_rule("v1")],
            endpoints={},
        )


def test_durations():
    assert parse_duration("2s") == 2
    assert parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("1m30s") == 90
    with pytest.raises(ManifestError):
        parse_duration("soon")


def test_service_proxy_is_tcp_per_connection():
    s = service_proxy_snapshot(service(), EPS, listen_port=30080)
    flt = s.listeners[0]["filter_chains"][0]["filters"][0]
    assert flt["name"] == "envoy.filters.network.tcp_proxy"
    assert flt["typed_config"]["cluster"] == f"outbound|8080||{HOST}"
    assert s.clusters[0]["lb_policy"] == "RANDOM"
    assert len(s.endpoints[0]["endpoints"][0]["lb_endpoints"]) == 3  # ready only
    with pytest.raises(ManifestError, match="no port 9090"):
        service_proxy_snapshot(service(), EPS, listen_port=30080, port=9090)


def test_sidecar_inbound():
    s = sidecar_snapshot(21001, 31001, pod="v1-a")
    assert s.cluster_names() == ["inbound|8080||"]
    assert s.clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"
    ]["socket_address"] == {"address": "127.0.0.1", "port_value": 31001}
    hcm = s.listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["retry_policy"] == {"retry_on": "reset-before-request", "num_retries": 2}
    assert route["timeout"] == "0s"
    assert s.listeners[0]["address"]["socket_address"]["port_value"] == 21001


def test_the_repository_manifests_translate():
    """The lab's own Istio manifests become the clusters and weights they describe."""
    import yaml

    root = Path(__file__).resolve().parents[3] / "manifests"
    if not (root / "istio" / "virtualservice-v1-v2.yaml").exists():
        pytest.skip("manifests/ not present")

    def load(name):
        return next(d for d in yaml.safe_load_all((root / name).read_text()) if d)

    vs = load("istio/virtualservice-v1-v2.yaml")
    s = gateway_snapshot(
        gateway=load("istio/gateway.yaml"),
        virtual_services=[vs],
        destination_rules=[load("istio/destinationrule.yaml")],
        services=[load("service.yaml")],
        endpoints={"zero-downtime-rollingupdate": EPS},
    )
    want = {
        f"outbound|8080|{r['destination']['subset']}|{HOST}": r["weight"]
        for r in vs["spec"]["http"][0]["route"]
        if r["weight"]
    }
    got = {c["name"]: c["weight"] for c in action(s)["weighted_clusters"]["clusters"]}
    assert got == want
    assert {f"outbound|8080|version-{v}|{HOST}" for v in ("v1", "v2", "v3")} <= set(
        s.cluster_names()
    )
    retries = vs["spec"]["http"][0].get("retries")
    if retries:
        assert action(s)["retry_policy"]["num_retries"] == retries["attempts"]
