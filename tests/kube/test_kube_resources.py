"""Manifest -> API request translation: which API object, method, plural and scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_app.cluster.kube.resources import (
    APPLY_PATCH,
    RESOURCE_TYPES,
    apply_request,
    delete_request,
    parse_ref,
    read_request,
    resource_type,
    type_for_kind,
)
from lab_app.errors import ManifestError

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def obj(api_version: str, kind: str, name: str = "x", **extra):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **extra}


@pytest.mark.parametrize(
    ("api_version", "kind", "api", "method"),
    [
        ("v1", "ConfigMap", "core", "patch_namespaced_config_map"),
        ("v1", "Service", "core", "patch_namespaced_service"),
        ("apps/v1", "Deployment", "apps", "patch_namespaced_deployment"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "autoscaling",
            "patch_namespaced_horizontal_pod_autoscaler",
        ),
    ],
)
def test_typed_kinds_are_server_side_applied_into_the_namespace(api_version, kind, api, method):
    request = apply_request(obj(api_version, kind, "demo"), "zdlab")
    assert (request.api, request.method) == (api, method)
    assert request.kwargs["name"] == "demo"
    assert request.kwargs["namespace"] == "zdlab"
    assert request.kwargs["field_manager"] == "zdlab"
    assert request.kwargs["force"] is True
    assert request.kwargs["_content_type"] == APPLY_PATCH
    assert request.kwargs["body"]["metadata"] == {"name": "demo", "namespace": "zdlab"}


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Gateway", "gateways"),
        ("VirtualService", "virtualservices"),
        ("DestinationRule", "destinationrules"),
    ],
)
def test_istio_kinds_go_through_custom_objects(kind, plural):
    request = apply_request(obj("networking.istio.io/v1", kind), "lab")
    assert (request.api, request.method) == ("custom", "patch_namespaced_custom_object")
    assert request.kwargs["group"] == "networking.istio.io"
    assert request.kwargs["version"] == "v1"
    assert request.kwargs["plural"] == plural
    assert request.kwargs["namespace"] == "lab"
    assert request.kwargs["_content_type"] == APPLY_PATCH


def test_namespace_is_cluster_scoped():
    request = apply_request(obj("v1", "Namespace", "zdlab"), "other")
    assert request.method == "patch_namespace"
    assert "namespace" not in request.kwargs
    assert "namespace" not in request.kwargs["body"]["metadata"]


def test_an_explicit_namespace_is_kept_and_the_input_is_not_modified():
    source = obj("v1", "ConfigMap", "c")
    source["metadata"]["namespace"] = "elsewhere"
    request = apply_request(source, "zdlab")
    assert request.kwargs["namespace"] == "elsewhere"
    plain = obj("v1", "ConfigMap", "c")
    apply_request(plain, "zdlab")
    assert plain["metadata"] == {"name": "c"}


def test_istio_version_of_the_manifest_is_used():
    request = apply_request(obj("networking.istio.io/v1beta1", "VirtualService"), "zdlab")
    assert request.kwargs["version"] == "v1beta1"


def test_unknown_kind_and_wrong_group_are_manifest_errors():
    with pytest.raises(ManifestError, match="kind 'CronJob' is not one the lab applies"):
        resource_type(obj("batch/v1", "CronJob"), "cron.yaml")
    with pytest.raises(ManifestError, match=r"Deployment must have apiVersion apps/v1"):
        resource_type(obj("extensions/v1beta1", "Deployment"), "old.yaml")
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        apply_request({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "zdlab")


def test_delete_and_read_requests():
    deployment = type_for_kind("Deployment")
    request = delete_request(deployment, "d", "zdlab")
    assert request.method == "delete_namespaced_deployment"
    assert request.kwargs == {"name": "d", "namespace": "zdlab", "propagation_policy": "Background"}
    vs = type_for_kind("vs")
    assert delete_request(vs, "v", "zdlab").method == "delete_namespaced_custom_object"
    assert read_request(vs, "v", "zdlab").method == "get_namespaced_custom_object"
    assert read_request(deployment, "d", "zdlab").method == "read_namespaced_deployment"


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("deployment/zero-downtime-rollingupdate", "Deployment", "zero-downtime-rollingupdate"),
        ("deploy/a", "Deployment", "a"),
        ("vs/route", "VirtualService", "route"),
        ("virtualservices.networking.istio.io/route", "VirtualService", "route"),
        ("destinationrule/r", "DestinationRule", "r"),
        ("hpa/h", "HorizontalPodAutoscaler", "h"),
        ("svc/s", "Service", "s"),
    ],
)
def test_parse_ref(text, kind, name):
    rt, parsed = parse_ref(text)
    assert (rt.kind, parsed) == (kind, name)


@pytest.mark.parametrize(
    "text", ["istio/gateway.yaml", "manifests/x", "deployment/a.yaml", "kind: Service\n"]
)
def test_paths_and_yaml_are_not_refs(text):
    assert parse_ref(text) is None


def test_every_kind_has_the_client_methods_it_names():
    from kubernetes import client as k8s

    apis = {
        "core": k8s.CoreV1Api,
        "apps": k8s.AppsV1Api,
        "autoscaling": k8s.AutoscalingV2Api,
        "custom": k8s.CustomObjectsApi,
    }
    for rt in RESOURCE_TYPES:
        for request in (
            apply_request(obj(rt.api_version, rt.kind), "zdlab"),
            delete_request(rt, "x", "zdlab"),
            read_request(rt, "x", "zdlab"),
        ):
            assert hasattr(apis[request.api], request.method), str(request)


def test_every_manifest_of_the_repo_maps_to_a_request():
    if not MANIFESTS.is_dir():
        pytest.skip("manifests/ not written yet")
    from lab_app.manifests import load_documents

    documents = load_documents(MANIFESTS)
    assert documents
    for document in documents:
        request = apply_request(document.obj, "zdlab", document.source)
        assert request.kwargs["body"]["kind"] == document.kind
