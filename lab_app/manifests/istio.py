"""Validation of the Istio kinds the lab implements (``networking.istio.io/v1``).

Istio ships its schemas as CRDs, which a laptop without a cluster does not have, so the lab
checks Gateway, VirtualService and DestinationRule against its own field schema
(:mod:`lab_app.manifests.istio_schema`) with jsonschema, plus what a schema cannot say and
istiod's validation webhook refuses: durations (Go syntax), ``retryOn`` conditions, weights
(integers 0..100, not all 0 on a split) and unique subset names. Older API versions Istio
still serves (``v1beta1``, ``v1alpha3``, the original demo's) pass with a
:class:`~lab_app.manifests.model.ManifestWarning` naming ``v1``.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Mapping
from functools import cache
from typing import Any

from lab_app.manifests import istio_schema
from lab_app.manifests.model import Manifest, ManifestWarning, error_at, is_istio
from lab_app.manifests.schema_errors import first_schema_error
from lab_app.manifests.units import to_seconds

ISTIO_API_VERSION = istio_schema.ISTIO_API_VERSION
ISTIO_KINDS = istio_schema.ISTIO_KINDS

# Istio still serves these versions of its networking kinds (same schema as v1; v1 is stable
# since Istio 1.22 and the storage version): accepted, with a warning naming v1.
DEPRECATED_ISTIO_VERSIONS = ("v1alpha3", "v1beta1")


def deprecated_api(obj: Mapping[str, Any]) -> str | None:
    """The warning for an Istio object of a deprecated API version, or ``None``."""
    if not is_istio(obj):
        return None
    api_version = str(obj.get("apiVersion", ""))
    if api_version.partition("/")[2] not in DEPRECATED_ISTIO_VERSIONS:
        return None
    return (
        f"{api_version} is deprecated (still served by Istio, stored as {ISTIO_API_VERSION});"
        f" use {ISTIO_API_VERSION}"
    )


def validate_istio(m: Manifest) -> None:
    """Raise the first problem of an Istio object (see module doc); warn on old versions."""
    kind, api_version = m.kind, m.api_version
    version = api_version.partition("/")[2]
    if kind not in ISTIO_KINDS:
        raise error_at(
            m,
            "kind",
            f"Istio kind {kind!r} is not implemented by the lab"
            f" (it knows {', '.join(ISTIO_KINDS)})",
        )
    if version in DEPRECATED_ISTIO_VERSIONS:
        warnings.warn(
            f"{m.source}: {kind} {m.name}: {deprecated_api(m.obj)}",
            ManifestWarning,
            stacklevel=2,
        )
    elif version != "v1":
        raise error_at(
            m, "apiVersion", f"unknown Istio API version {api_version!r}; use {ISTIO_API_VERSION}"
        )
    error = first_schema_error(_istio_validator(kind, api_version), m)
    if error is not None:
        raise error
    if kind == "VirtualService":
        check_weights(m)
    elif kind == "DestinationRule":
        seen: dict[str, int] = {}
        for i, subset in enumerate(m.obj["spec"].get("subsets") or []):
            name = subset["name"]
            if name in seen:
                raise error_at(
                    m,
                    f"spec.subsets[{i}].name",
                    f"subset {name!r} is defined twice (first at spec.subsets[{seen[name]}])",
                )
            seen[name] = i


def check_weights(m: Manifest) -> None:
    """Each weight an integer 0..100; a split (two or more destinations) not all 0."""
    for i, route in enumerate((m.obj.get("spec") or {}).get("http") or []):
        destinations = route.get("route") or []
        for j, dest in enumerate(destinations):
            weight = dest.get("weight", 0)
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                raise error_at(
                    m,
                    f"spec.http[{i}].route[{j}].weight",
                    f"a weight is an integer from 0 to 100, got {weight!r}",
                )
        if len(destinations) > 1 and not any(d.get("weight", 0) for d in destinations):
            raise error_at(
                m,
                f"spec.http[{i}].route",
                f"all {len(destinations)} destinations have weight 0 (or none): no traffic could"
                " be routed; weights are relative shares, e.g. 90 and 10",
            )


_RETRY_ON = frozenset(
    {
        # Envoy HTTP retry conditions (x-envoy-retry-on)
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        # gRPC conditions (x-envoy-retry-grpc-on), which Istio also accepts
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def _check_retry_on(value: object) -> bool:
    if not isinstance(value, str):
        return True
    for token in (t.strip() for t in value.split(",")):
        if token in _RETRY_ON or re.fullmatch(r"[1-5]\d\d", token):
            continue
        close = difflib.get_close_matches(token, _RETRY_ON, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown retry condition {token!r}{hint}; known: {', '.join(sorted(_RETRY_ON))}"
            " or an HTTP status code"
        )
    return True


def _check_duration(value: object) -> bool:
    if isinstance(value, str):
        to_seconds(value)
    return True


def _check_regex(value: object) -> bool:
    if isinstance(value, str):
        re.compile(value)
    return True


@cache
def _istio_validator(kind: str, api_version: str) -> Any:
    import jsonschema  # costs about a second the first time: imported when first needed

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("duration", raises=ValueError)(_check_duration)
    checker.checks("retry-on", raises=ValueError)(_check_retry_on)
    checker.checks("regex", raises=re.error)(_check_regex)
    schema = istio_schema.schema_for(kind, api_version)
    return jsonschema.Draft202012Validator(schema, format_checker=checker)
