"""Validate one object: the entry point that sends each kind to its validator.

Every object first carries only what JSON can (YAML's unquoted dates and integer keys
would reach the API server as something else), then has an ``apiVersion`` and a ``kind``;
Istio kinds go to :mod:`lab_app.manifests.istio`, every other kind to
:mod:`lab_app.manifests.kubernetes`. The first problem found is raised.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from lab_app.manifests.istio import validate_istio
from lab_app.manifests.kubernetes import validate_kubernetes
from lab_app.manifests.model import Manifest, error_at, format_path, is_istio


def validate(m: Manifest) -> None:
    """Raise ``ManifestError`` for the first problem of ``m``; return when it is valid."""
    obj = m.obj
    check_plain_data(m, obj, [])
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise error_at(m, key, f"missing {key} (every object needs apiVersion and kind)")
    if is_istio(obj):
        validate_istio(m)
    else:
        validate_kubernetes(m)


def check_plain_data(m: Manifest, value: Any, parts: list[str | int]) -> None:
    """Only what JSON can carry reaches the API server: catch YAML's dates and int keys."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error_at(
                    m,
                    format_path([*parts, str(key)]),
                    f"key {key!r} is read by YAML as a {type(key).__name__}: quote it",
                )
            check_plain_data(m, item, [*parts, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_plain_data(m, item, [*parts, i])
    elif isinstance(value, datetime.date | datetime.datetime):
        raise error_at(
            m,
            format_path(parts),
            f'{value} is read by YAML as a date: quote it, e.g. "{value}"',
        )
    elif isinstance(value, float) and not math.isfinite(value):
        raise error_at(m, format_path(parts), f"{value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise error_at(
            m, format_path(parts), f"a {type(value).__name__} cannot be sent to the API server"
        )
