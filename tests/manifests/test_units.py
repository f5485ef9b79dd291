"""Durations (Istio) and quantities (Kubernetes) parse as the APIs define them."""

from __future__ import annotations

import pytest

from lab_app.errors import ManifestError
from lab_app.manifests import format_path, parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("250us", 250e-6),
        ("10ns", 10e-9),
        ("0s", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2", "add a unit, e.g. '2s'"),
        ("2x", "invalid duration"),
        ("", "empty"),
        ("-1s", "invalid duration"),
        (2, "a duration is a string"),
        ("s", "invalid duration"),
    ],
)
def test_bad_durations(value: object, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_duration(value, source="vs.yaml", field="spec.http[0].timeout")
    assert words in str(info.value)
    assert info.value.source == "vs.yaml" and info.value.field == "spec.http[0].timeout"


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("256Mi", 256 * 2**20),
        ("256M", 256e6),
        ("1", 1.0),
        ("500m", 0.5),
        ("1e3", 1000.0),
        ("1E", 1e18),
        ("1.5Gi", 1.5 * 2**30),
        ("100k", 1e5),
        (".5", 0.5),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_quantities(text: object, amount: float) -> None:
    assert parse_quantity(text) == pytest.approx(amount)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("256mb", "case-sensitive"),
        ("1mi", "case-sensitive"),
        ("Mi", "e.g."),
        (" 1", "e.g."),
        ("NaN", "e.g."),
        ("1.2.3", "e.g."),
        (True, "invalid"),
        (None, "invalid"),
    ],
)
def test_bad_quantities(value: object, hint: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_quantity(value, source="d.yaml", field="spec.x")
    assert hint in str(info.value) and info.value.field == "spec.x"


def test_format_path() -> None:
    assert format_path(["spec", "containers", 0, "name"]) == "spec.containers[0].name"
    assert (
        format_path(["metadata", "labels", "app.kubernetes.io/name"])
        == 'metadata.labels["app.kubernetes.io/name"]'
    )
