"""Bad manifests fail with a ManifestError naming the file, the field and (for files) the line."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest

from lab_app.errors import ManifestError
from lab_app.manifests import (
    MANIFESTS_DIR,
    ManifestWarning,
    check_routes,
    load_documents,
    load_manifests,
    validate_object,
)

DEPLOYMENT = (MANIFESTS_DIR / "deployment.yaml").read_text()
VS_V1_V2 = (MANIFESTS_DIR / "istio" / "virtualservice-v1-v2.yaml").read_text()
DR = (MANIFESTS_DIR / "istio" / "destinationrule.yaml").read_text()
HPA = (MANIFESTS_DIR / "hpa.yaml").read_text()
CONFIGMAP = (MANIFESTS_DIR / "configmap.yaml").read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def fails(source: Any) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifests(source)
    return info.value


def test_typo_in_a_field_names_file_field_and_line(tmp_path: Path) -> None:
    text = replaced(DEPLOYMENT, "periodSeconds: 1 ", "periodSecondz: 1 ")
    path = write(tmp_path, "deployment.yaml", text)
    err = fails(path)
    assert err.source.endswith("deployment.yaml")
    assert err.field == "spec.template.spec.containers[0].readinessProbe.periodSecondz"
    assert err.line == line_of(text, "periodSecondz")  # type: ignore[attr-defined]
    assert "unknown field 'periodSecondz'" in str(err)
    assert "did you mean 'periodSeconds'" in str(err)
    assert str(path.name) in str(err) and err.field in str(err)


def test_unknown_kind_is_named() -> None:
    err = fails(replaced(DEPLOYMENT, "kind: Deployment", "kind: Deploymnet"))
    assert err.field == "kind" and err.source == "<text>"
    assert "'Deploymnet'" in str(err) and "did you mean 'Deployment'" in str(err)


def test_an_unknown_custom_resource_is_an_unknown_kind() -> None:
    err = fails({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert err.field == "kind" and "unknown kind 'Widget'" in str(err)


def test_removed_kubernetes_api_names_the_replacement() -> None:
    err = fails(replaced(HPA, "autoscaling/v2", "autoscaling/v2beta1"))
    assert err.field == "apiVersion"
    assert "Kubernetes 1.25" in str(err) and "use autoscaling/v2" in str(err)


def test_istio_v1alpha3_is_accepted_with_the_version_to_use(tmp_path: Path) -> None:
    # Istio still serves v1alpha3 (deprecated; v1 stable since 1.22): a warning, not an error
    text = replaced(VS_V1_V2, "networking.istio.io/v1\n", "networking.istio.io/v1alpha3\n")
    with pytest.warns(ManifestWarning, match="use networking.istio.io/v1") as record:
        (obj,) = load_manifests(write(tmp_path, "istio/vs.yaml", text))
    assert obj["apiVersion"] == "networking.istio.io/v1alpha3"
    assert "istio/vs.yaml" in str(record[0].message)
    # a wrong field is still an error in the old version (same schema as v1)
    with pytest.warns(ManifestWarning):
        err = fails(replaced(text, "perTryTimeout: 2s", "perTryTimout: 2s"))
    assert err.field.endswith("retries.perTryTimout")


def test_istio_v1beta1_is_accepted_with_a_warning() -> None:
    text = replaced(VS_V1_V2, "networking.istio.io/v1\n", "networking.istio.io/v1beta1\n")
    with pytest.warns(ManifestWarning, match="use networking.istio.io/v1"):
        (obj,) = load_manifests(text)
    assert obj["apiVersion"] == "networking.istio.io/v1beta1"


def test_unsupported_istio_kind() -> None:
    err = fails(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "x"},
            "spec": {},
        }
    )
    assert err.field == "kind" and "not implemented by the lab" in str(err)


def test_gateway_api_gateway_is_not_the_istio_one() -> None:
    err = fails(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "g"},
            "spec": {},
        }
    )
    assert err.field == "apiVersion" and "networking.istio.io/v1" in str(err)


def test_subset_missing_from_the_destinationrule(tmp_path: Path) -> None:
    # Istio accepts the route (503 NC at request time): a warning like istioctl analyze's
    dr = replaced(DR, "name: version-v2\n", "name: version-v9\n")
    text = dr + "---\n" + VS_V1_V2
    with pytest.warns(ManifestWarning, match="IST0101") as record:
        docs = load_documents(write(tmp_path, "both.yaml", text))
    assert [d.kind for d in docs] == ["DestinationRule", "VirtualService"]
    message = str(record[0].message)
    assert "both.yaml" in message and "spec.http[0].route[1].destination.subset" in message
    assert '"zero-downtime-rollingupdate+version-v2"' in message and "503 NC" in message


def test_check_routes_directly() -> None:
    (vs,) = load_manifests(VS_V1_V2)
    (dr,) = load_manifests(DR)
    check_routes([vs], [dr])
    dr_without_v2 = copy.deepcopy(dr)
    dr_without_v2["spec"]["subsets"] = [
        s for s in dr_without_v2["spec"]["subsets"] if s["name"] != "version-v2"
    ]
    with pytest.raises(ManifestError, match="version-v2") as info:
        check_routes([vs], [dr_without_v2])
    assert info.value.field == "spec.http[0].route[1].destination.subset"
    # No DestinationRule at all for the host: an error unless told it may exist elsewhere.
    with pytest.raises(ManifestError, match="no DestinationRule"):
        check_routes([vs], [])
    check_routes([vs], [], require_destinationrule=False)
    # FQDN hosts name the same service.
    fqdn = copy.deepcopy(dr)
    fqdn["spec"]["host"] = "zero-downtime-rollingupdate.zdlab.svc.cluster.local"
    check_routes([vs], [fqdn])


def test_weights_summing_to_zero() -> None:
    text = replaced(replaced(VS_V1_V2, "weight: 90", "weight: 0"), "weight: 10", "weight: 0")
    err = fails(text)
    assert err.field == "spec.http[0].route"
    assert "weight 0" in str(err)
    assert err.line == line_of(text, "route:")  # type: ignore[attr-defined]
    # The same rule applies to objects built in code (e.g. a weight change).
    (vs,) = load_manifests(VS_V1_V2)
    for route in vs["spec"]["http"]:
        for d in route["route"]:
            d["weight"] = 0
    with pytest.raises(ManifestError, match="weight 0"):
        check_routes([vs], [])


def test_weight_out_of_range_and_zero_to_one_side_is_fine() -> None:
    err = fails(replaced(VS_V1_V2, "weight: 90", "weight: 190"))
    assert err.field == "spec.http[0].route[0].weight" and "at most 100" in str(err)
    # 0/100 is a valid split (all traffic on v2).
    text = replaced(replaced(VS_V1_V2, "weight: 90", "weight: 0"), "weight: 10", "weight: 100")
    assert load_manifests(text)[0]["spec"]["http"][0]["route"][1]["weight"] == 100


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    text = replaced(DEPLOYMENT, "      maxSurge: 1", "     maxSurge: 1")
    err = fails(write(tmp_path, "broken.yaml", text))
    assert err.source.endswith("broken.yaml")
    assert "invalid YAML at line" in str(err)
    assert err.line == line_of(text, "maxUnavailable: 0   #")  # type: ignore[attr-defined]


def test_the_original_demos_misindented_virtualservice_is_refused() -> None:
    # The original's istio-virtual-service-v1-v2.yaml: the first destination's `port` and
    # `subset` indented under `host`'s value.
    text = replaced(
        VS_V1_V2,
        "            host: zero-downtime-rollingupdate\n            subset: version-v1\n",
        "            host: zero-downtime-rollingupdate\n              subset: version-v1\n",
    )
    err = fails(text)
    assert "invalid YAML at line" in str(err)


def test_duplicate_keys_are_refused() -> None:
    err = fails(replaced(DEPLOYMENT, "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n"))
    assert "duplicate key 'replicas'" in str(err)


def test_unquoted_boolean_in_a_configmap() -> None:
    err = fails(
        replaced(CONFIGMAP, 'ENABLE_FAULT_ENDPOINTS: "true"', "ENABLE_FAULT_ENDPOINTS: true")
    )
    assert err.field == "data.ENABLE_FAULT_ENDPOINTS"
    assert "quote it" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "perTryTimeout",
            "perTryTimout",
            "spec.http[0].retries.perTryTimout",
            "did you mean 'perTryTimeout'",
        ),
        ("perTryTimeout: 2s", "perTryTimeout: 2", "spec.http[1].retries.perTryTimeout", "duration"),
        (
            "perTryTimeout: 2s",
            "perTryTimeout: 2x",
            "spec.http[1].retries.perTryTimeout",
            "invalid duration",
        ),
        (
            "connect-failure",
            "conect-failure",
            "spec.http[0].retries.retryOn",
            "did you mean 'connect-failure'",
        ),
        (
            "      retries:",
            "      corsPolicy: {}\n      retries:",
            "spec.http[0].corsPolicy",
            "not implemented by the lab",
        ),
        (
            "subset: version-v1",
            "subset: Version_V1",
            "spec.http[0].route[0].destination.subset",
            "Version_V1",
        ),
        (
            "    - name: default\n",
            "    - name: default\n      match:\n        - uri: {prefix: /a, exact: /b}\n",
            "spec.http[1].match[0].uri",
            "exactly one of",
        ),
    ],
)
def test_istio_field_errors(old: str, new: str, field: str, words: str) -> None:
    err = fails(replaced(VS_V1_V2, old, new))
    assert err.field == field
    assert words in str(err)


def test_duplicate_subset_names() -> None:
    err = fails(replaced(DR, "name: version-v3", "name: version-v1"))
    assert err.field == "spec.subsets[2].name" and "defined twice" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "      track: plain\n  strategy",
            "      track: other\n  strategy",
            "spec.selector.matchLabels.track",
            "does not match",
        ),
        (
            "memory: 256Mi",
            "memory: 256mb",
            "spec.template.spec.containers[0].resources.limits.memory",
            "invalid quantity",
        ),
        (
            "cpu: 100m",
            'cpu: "2"',
            "spec.template.spec.containers[0].resources.requests.cpu",
            "above the limit",
        ),
        (
            "seconds: 5",
            "seconds: 50",
            "spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds",
            "terminationGracePeriodSeconds",
        ),
        (
            "  name: zero-downtime-rollingupdate\n",
            "  name: Zero_Downtime\n",
            "metadata.name",
            "RFC 1123",
        ),
        (
            "    track: plain\nspec",
            "    track: plain!\nspec",
            "metadata.labels.track",
            "label value",
        ),
        ("replicas: 2", "replicas: two", "spec.replicas", "expected an integer"),
        (
            "- name: http   #",
            "- name: http-port-too-long-x   #",
            "spec.template.spec.containers[0].ports[0].name",
            "port name",
        ),
    ],
)
def test_kubernetes_field_errors(old: str, new: str, field: str, words: str) -> None:
    err = fails(replaced(DEPLOYMENT, old, new))
    assert err.field == field
    assert words in str(err)
    assert "Deployment" in str(err)


def test_missing_required_field_is_named() -> None:
    obj = load_manifests(DEPLOYMENT)[0]
    del obj["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ManifestError, match="missing required field 'name'") as info:
        validate_object(obj)
    assert info.value.field == "spec.template.spec.containers[0].name"
    assert info.value.source == "<dict>"


def test_missing_kind_and_non_mapping_documents() -> None:
    assert fails({"apiVersion": "v1", "metadata": {"name": "x"}}).field == "kind"
    assert "expected a mapping" in str(fails("- a\n- b\n"))
    assert "expected a mapping" in str(fails([{"apiVersion": "v1"}, "nope"]))


def test_yaml_dates_must_be_quoted() -> None:
    err = fails("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  d: 2024-01-01\n")
    assert err.field == "data.d" and "date" in str(err)


def test_a_bad_file_in_a_directory_is_named(tmp_path: Path) -> None:
    write(tmp_path, "a/good.yaml", CONFIGMAP)
    write(tmp_path, "b/bad.yml", replaced(DEPLOYMENT, "periodSeconds: 1 ", "periodSecondz: 1 "))
    write(tmp_path, "notes.txt", "not yaml: [")
    err = fails(tmp_path)
    assert err.source.endswith("b/bad.yml")


def test_missing_path() -> None:
    err = fails("no-such-manifest.yaml")
    assert "no such file" in str(err) and err.source == "no-such-manifest.yaml"


def test_list_source_names_the_item() -> None:
    (cm,) = load_manifests(CONFIGMAP)
    bad = copy.deepcopy(cm)
    bad["data"]["X"] = 1
    err = fails([cm, bad])
    assert err.source == "<list>" and "document 2" in str(err) and err.field == "data.X"


def test_sources_are_equivalent_and_results_are_copies() -> None:
    from_file = load_manifests(MANIFESTS_DIR / "deployment.yaml")
    from_str_path = load_manifests(str(MANIFESTS_DIR / "deployment.yaml"))
    from_text = load_manifests(DEPLOYMENT)
    (obj,) = from_text
    from_dict = load_manifests(obj)
    from_list = load_manifests([obj])
    assert from_file == from_str_path == from_text == from_dict == from_list
    from_dict[0]["spec"]["replicas"] = 7
    assert obj["spec"]["replicas"] == 2  # the caller's dict is not shared
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}  # nothing added


def test_documents_carry_their_origin(tmp_path: Path) -> None:
    path = write(tmp_path, "two.yaml", "---\n" + HPA + "\n---\n\n---\n" + CONFIGMAP)
    docs = load_documents(path)
    assert [(d.kind, d.index) for d in docs] == [
        ("HorizontalPodAutoscaler", 0),
        ("ConfigMap", 2),
    ]
    assert docs[1].line_of("data.FULLGC_SECONDS") == (line_of(path.read_text(), "FULLGC_SECONDS"))
    assert docs[1].ref == "configmap/cluster"


def test_no_warning_for_the_repo_manifests() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_manifests(MANIFESTS_DIR)
