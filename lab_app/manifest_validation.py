"""Validation of the lab's manifests: Kubernetes schemas, the lab's Istio schema, the few
API-server rules a schema cannot express, and the VirtualService/DestinationRule cross-check.

Kubernetes kinds are checked against the OpenAPI schemas of Kubernetes
``KUBERNETES_VERSION`` shipped by kubernetes-validate, in strict mode (unknown fields are
errors). Istio kinds are checked against :mod:`lab_app.istio_schema`. Every problem becomes
one ``ManifestError`` naming the file, the dotted field path and, when known, the line.
:mod:`lab_app.manifests` reads the sources and is the module to import.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from lab_app import istio_schema
from lab_app.errors import ManifestError
from lab_app.units import to_amount, to_seconds

KUBERNETES_VERSION = "1.33"
ISTIO_API_VERSION = istio_schema.ISTIO_API_VERSION
ISTIO_KINDS = istio_schema.ISTIO_KINDS


class ManifestWarning(UserWarning):
    """A manifest is accepted but uses something deprecated (e.g. Istio ``v1beta1``) or
    references something that does not exist (a subset, like ``istioctl analyze`` IST0101)."""


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


@dataclass(frozen=True)
class RouteProblem:
    """A route to a subset that no DestinationRule defines (``istioctl analyze`` IST0101).

    Istio accepts such a VirtualService; istiod still names the cluster
    ``outbound|PORT|SUBSET|HOST``, which does not exist, so Envoy answers ``503`` flag ``NC``.
    """

    virtualservice: str  # metadata.name
    field: str  # e.g. spec.http[0].route[1].destination.subset
    host: str
    subset: str
    known: tuple[str, ...]  # the subsets the host's DestinationRule defines
    has_destinationrule: bool
    source: str = ""
    mirror: bool = False
    manifest: Manifest | None = field(default=None, compare=False, repr=False)

    @property
    def analyze_message(self) -> str:
        """The text ``istioctl analyze`` prints for it (level Error, code IST0101)."""
        what = "mirror+subset" if self.mirror else "host+subset"
        return f'Referenced {what} in destinationrule not found: "{self.host}+{self.subset}"'

    @property
    def message(self) -> str:
        defined = (
            f"it defines: {', '.join(self.known) or 'none'}"
            if self.has_destinationrule
            else "no DestinationRule defines subsets for this host"
        )
        return (
            f"IST0101 virtualservice/{self.virtualservice} {self.field}: {self.analyze_message}"
            f" ({defined}); Envoy has no cluster for it and answers 503 NC until the"
            " DestinationRule defines it"
        )


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes/Istio object and where it came from."""

    obj: dict[str, Any]
    source: str  # file path (relative to the repo when inside it), "<text>", "<dict>", "<list>"
    index: int = 0  # 0-based document index within the source
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def ref(self) -> str:
        """``kind/name`` in lower-case kind, as ``kubectl`` and the lab's events write it."""
        return f"{self.kind.lower()}/{self.name}"

    def line_of(self, path: str) -> int | None:
        """1-based line of a dotted field path (or of its nearest parent), if known."""
        return _line_for(self.lines, path)


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "containers", 0, "name"]`` -> ``"spec.containers[0].name"``.

    Keys that are not plain identifiers (label keys such as ``app.kubernetes.io/name``)
    are written ``labels["app.kubernetes.io/name"]``.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def check_routes(
    virtualservices: Iterable[Mapping[str, Any] | Manifest],
    destinationrules: Iterable[Mapping[str, Any] | Manifest],
    *,
    require_destinationrule: bool = True,
) -> None:
    """Check VirtualService routes against DestinationRules (make-before-break).

    Every ``subset`` a route or mirror names must be defined by the DestinationRule of its
    host, or Envoy has no cluster for it and answers 503 with flag NC. Weights must be
    integers 0..100 and, with more than one destination, not all 0. Hosts are compared by
    their short name (``svc``, ``svc.ns``, ``svc.ns.svc.cluster.local`` are the same
    service), since the lab keeps everything in one namespace.

    With ``require_destinationrule=False``, a subset whose host has no DestinationRule in
    the given set is not an error (it may already be in the cluster).

    This is the lab's strict check (``strict_routes=True``); Istio itself accepts such routes
    (see :func:`route_problems`, which lists them without raising).
    """
    virtualservices = [as_manifest(vs) for vs in virtualservices]
    for vs in virtualservices:
        _check_weights(vs)
    problems = route_problems(
        virtualservices, destinationrules, require_destinationrule=require_destinationrule
    )
    if not problems:
        return
    first = problems[0]
    vs = first.manifest or as_manifest({"kind": "VirtualService"})
    if not first.has_destinationrule:
        raise error_at(
            vs,
            first.field.rsplit(".", 1)[0] + ".host",
            f"no DestinationRule for host {first.host!r} defines subsets,"
            f" so subset {first.subset!r} does not exist (Envoy would answer 503 NC):"
            " apply the DestinationRule first (make before break)",
        )
    raise error_at(
        vs,
        first.field,
        f"subset {first.subset!r} is not defined by the DestinationRule of host"
        f" {first.host!r} (it defines: {', '.join(first.known) or 'none'}); Envoy would have"
        " no cluster for it and answer 503 NC: add the subset to the"
        " DestinationRule before routing to it (make before break)",
    )


def route_problems(
    virtualservices: Iterable[Mapping[str, Any] | Manifest],
    destinationrules: Iterable[Mapping[str, Any] | Manifest],
    *,
    require_destinationrule: bool = True,
) -> list[RouteProblem]:
    """Every route or mirror to a subset the DestinationRules do not define, in order.

    Hosts are compared by short name. With ``require_destinationrule=False`` a host with
    no DestinationRule in the given set is skipped (it may already be in the cluster).
    """
    virtualservices = list(virtualservices)
    subsets: dict[str, dict[str, str]] = {}  # host -> subset -> DestinationRule name
    for item in destinationrules:
        dr = as_manifest(item)
        spec = dr.obj.get("spec") or {}
        host = _short_host(str(spec.get("host", "")))
        names = subsets.setdefault(host, {})
        for subset in spec.get("subsets") or []:
            names[str(subset.get("name"))] = dr.name
    problems: list[RouteProblem] = []
    for item in virtualservices:
        vs = as_manifest(item)
        for i, route in enumerate((vs.obj.get("spec") or {}).get("http") or []):
            targets = [
                (f"spec.http[{i}].route[{j}].destination", d.get("destination") or {})
                for j, d in enumerate(route.get("route") or [])
            ]
            if route.get("mirror"):
                targets.append((f"spec.http[{i}].mirror", route["mirror"]))
            for path, dest in targets:
                subset = dest.get("subset")
                if subset is None:
                    continue
                host = _short_host(str(dest.get("host", "")))
                if host not in subsets and not require_destinationrule:
                    continue
                if subset in subsets.get(host, {}):
                    continue
                problems.append(
                    RouteProblem(
                        virtualservice=vs.name,
                        field=f"{path}.subset",
                        host=str(dest.get("host", "")),
                        subset=str(subset),
                        known=tuple(sorted(subsets.get(host, {}))),
                        has_destinationrule=host in subsets,
                        source=vs.source,
                        mirror=path.endswith(".mirror"),
                        manifest=vs,
                    )
                )
    return problems


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


def is_kind_config(obj: Mapping[str, Any]) -> bool:
    """A kind tool config (``kind-cluster.yaml``): configures the tool, never applied."""
    return str(obj.get("apiVersion", "")).startswith("kind.x-k8s.io/")


def as_manifest(item: Mapping[str, Any] | Manifest) -> Manifest:
    """Wrap a plain dict (from code, no file) so errors can still name object and field."""
    return item if isinstance(item, Manifest) else Manifest(obj=dict(item), source="<dict>")


def is_istio(obj: Mapping[str, Any], kind: str | None = None) -> bool:
    """Whether ``obj`` belongs to networking.istio.io (and is of ``kind``, if given)."""
    group = str(obj.get("apiVersion", "")).partition("/")[0]
    return group == istio_schema.ISTIO_GROUP and (kind is None or obj.get("kind") == kind)


def _line_for(lines: Mapping[str, int], path: str) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def error_at(m: Manifest, path: str, problem: str) -> ManifestError:
    """A ManifestError for ``problem`` at field ``path`` of ``m``, with object, document, line.

    ``err.line`` (1-based or None) and ``err.document`` (0-based) are set on it.
    """
    where = []
    if m.kind:
        where.append(f"{m.kind} {m.name}".strip())
    if m.index or m.source == "<list>":
        where.append(f"document {m.index + 1}")
    line = m.line_of(path) if path else None
    if line:
        where.append(f"line {line}")
    message = f"{problem} [{', '.join(where)}]" if where else problem
    err = ManifestError(message, source=m.source, field=path)
    err.line = line  # type: ignore[attr-defined]
    err.document = m.index  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------------------- validation

_COMMON_KINDS = (
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    *ISTIO_KINDS,
)

# (kind, apiVersion) -> (Kubernetes version that stopped serving it, the one to use)
_REMOVED_APIS = {
    ("HorizontalPodAutoscaler", "autoscaling/v2beta1"): ("1.25", "autoscaling/v2"),
    ("HorizontalPodAutoscaler", "autoscaling/v2beta2"): ("1.26", "autoscaling/v2"),
    ("Deployment", "extensions/v1beta1"): ("1.16", "apps/v1"),
    ("Deployment", "apps/v1beta1"): ("1.16", "apps/v1"),
    ("Deployment", "apps/v1beta2"): ("1.16", "apps/v1"),
    ("PodDisruptionBudget", "policy/v1beta1"): ("1.25", "policy/v1"),
    ("CronJob", "batch/v1beta1"): ("1.25", "batch/v1"),
    ("Ingress", "extensions/v1beta1"): ("1.22", "networking.k8s.io/v1"),
    ("Ingress", "networking.k8s.io/v1beta1"): ("1.22", "networking.k8s.io/v1"),
}


def validate(m: Manifest) -> None:
    obj = m.obj
    check_plain_data(m, obj, [])
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise error_at(m, key, f"missing {key} (every object needs apiVersion and kind)")
    if is_istio(obj):
        _validate_istio(m)
    else:
        _validate_kubernetes(m)


def _validate_istio(m: Manifest) -> None:
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
    error = _first_schema_error(_istio_validator(kind, api_version), m)
    if error is not None:
        raise error
    if kind == "VirtualService":
        _check_weights(m)
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


def _check_weights(m: Manifest) -> None:
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


def _first_schema_error(validator: Any, m: Manifest) -> ManifestError | None:
    errors = list(validator.iter_errors(m.obj))
    if not errors:
        return None
    described = [_describe(e) for e in errors]
    # Report the problem nearest the top of the file (or the shallowest one); a missing
    # field last, since it is often the consequence of a misspelt or unsupported one.
    path, problem = min(
        described,
        key=lambda d: (d[1].startswith("missing"), m.line_of(d[0]) or 0, d[0].count(".")),
    )
    return error_at(m, path, problem)


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}


def _describe(error: Any) -> tuple[str, str]:
    """A jsonschema ValidationError as (dotted field path, one-sentence problem)."""
    parts: list[str | int] = list(error.absolute_path)
    instance, schema, keyword = error.instance, error.schema, error.validator
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list((schema.get("properties") or {}).keys())
        extras = [k for k in instance if k not in allowed]
        if extras:
            key = str(extras[0])
            istio_only = schema.get("x-istio-only") or []
            if key in istio_only:
                problem = f"field {key!r} is valid Istio but not implemented by the lab"
            else:
                problem = f"unknown field {key!r}"
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                if close:
                    problem += f" (did you mean {close[0]!r}?)"
            return format_path([*parts, key]), problem
    if keyword == "required" and isinstance(instance, Mapping):
        missing = [r for r in error.validator_value if r not in instance]
        if missing:
            return format_path([*parts, missing[0]]), f"missing required field {missing[0]!r}"
    path = format_path(parts)
    if schema.get("x-message") and keyword not in ("type",):
        return path, f"{schema['x-message']}, got {instance!r}"
    if keyword == "type" and schema.get("format") == "duration":
        return path, f"expected a duration such as '2s' or '500ms', got {_show(instance)}"
    if keyword == "type":
        wanted = error.validator_value
        wanted = [wanted] if isinstance(wanted, str) else [t for t in wanted if t != "null"]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        problem = f"expected {names}, got {_show(instance)}"
        if "string" in wanted and isinstance(instance, bool | int | float):
            problem += (
                f" (YAML reads it as a {'boolean' if isinstance(instance, bool) else 'number'}:"
                f' quote it, e.g. "{_yaml_scalar(instance)}")'
            )
        return path, problem
    if keyword in ("oneOf", "anyOf") and schema.get(keyword):
        types: list[str] = []
        for sub in schema[keyword]:
            t = sub.get("type")
            types.extend([t] if isinstance(t, str) else [x for x in t or [] if x != "null"])
        if types:
            names = " or ".join(_TYPE_NAMES.get(t, t) for t in dict.fromkeys(types))
            return path, f"expected {names}, got {_show(instance)}"
    if keyword in ("enum", "const"):
        allowed_values = error.validator_value if keyword == "enum" else [error.validator_value]
        return path, f"{_show(instance)} is not allowed here; use one of {allowed_values}"
    if keyword == "format" and error.cause is not None:
        return path, str(error.cause.args[0] if error.cause.args else error.cause)
    if keyword in ("minimum", "maximum"):
        bound = "at least" if keyword == "minimum" else "at most"
        return path, f"{_show(instance)} must be {bound} {error.validator_value}"
    if keyword == "minItems":
        return path, f"needs at least {error.validator_value} item(s)"
    if keyword == "pattern":
        return path, f"{_show(instance)} does not match {error.validator_value}"
    return path, error.message


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _yaml_scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# Kubernetes kinds ---------------------------------------------------------------------


def _validate_kubernetes(m: Manifest) -> None:
    kind, api_version = m.kind, m.api_version
    removed = _REMOVED_APIS.get((kind, api_version))
    if removed:
        raise error_at(
            m,
            "apiVersion",
            f"{kind} {api_version} is no longer served since Kubernetes {removed[0]};"
            f" use {removed[1]}",
        )
    if kind in ISTIO_KINDS:
        raise error_at(
            m,
            "apiVersion",
            f"the lab's {kind} is {ISTIO_API_VERSION}, not {api_version!r}",
        )
    status, detail = _kubernetes_schema_check(json.dumps(m.obj, sort_keys=True))
    if status == "no-schema":
        close = difflib.get_close_matches(kind, _COMMON_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close and close[0] != kind else ""
        raise error_at(
            m,
            "kind",
            f"unknown kind {kind!r} with apiVersion {api_version!r}{hint}: Kubernetes"
            f" {KUBERNETES_VERSION} has no such resource and the lab knows no such Istio kind",
        )
    if status == "invalid" and detail is not None:
        path, problem = detail
        if path in ("apiVersion", "kind", "metadata") and problem.startswith("unknown field"):
            # the schema of a part of a resource (e.g. "Container"), not of a resource
            raise error_at(m, "kind", f"{kind!r} is not a resource kind that can be applied")
        raise error_at(m, path, problem)
    _check_kubernetes_semantics(m)


def _import_kubernetes_validate() -> Any:
    """Import kubernetes-validate without paying for a grammar Kubernetes schemas never use.

    jsonschema's format checker imports ``rfc3987_syntax`` when it is installed (Jupyter brings
    it), which compiles a Lark grammar at import: 1.3 s, most of a cold cluster start. It only
    checks the ``iri``/``iri-reference`` formats, which no Kubernetes schema uses, and
    jsonschema skips that check when the import fails. So unless something already imported
    it, the lab marks it unavailable for this process (``sys.modules[name] = None`` makes the
    import raise ImportError, which jsonschema expects).
    """
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import kubernetes_validate

    return kubernetes_validate


@cache
def _schema_version() -> str:
    """KUBERNETES_VERSION, or the newest schemas an older kubernetes-validate ships."""
    kubernetes_validate = _import_kubernetes_validate()

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(x) for x in version.split(".")[:2])

    latest = kubernetes_validate.latest_version()
    if key(latest) < key(KUBERNETES_VERSION):
        warnings.warn(
            f"kubernetes-validate {kubernetes_validate.__version__} has no Kubernetes"
            f" {KUBERNETES_VERSION} schemas; validating against {latest}",
            ManifestWarning,
            stacklevel=2,
        )
        return latest
    return KUBERNETES_VERSION


@lru_cache(maxsize=1024)
def _kubernetes_schema_check(canonical: str) -> tuple[str, tuple[str, str] | None]:
    """Validate with kubernetes-validate (cached by content: backends re-apply the same files)."""
    kubernetes_validate = _import_kubernetes_validate()  # imported late: jsonschema is slow

    obj = json.loads(canonical)
    try:
        kubernetes_validate.validate(obj, _schema_version(), strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return "no-schema", None
    except kubernetes_validate.ValidationError as exc:
        return "invalid", _describe(exc)
    return "ok", None


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(istio_schema.DNS_SUBDOMAIN)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_WORKLOAD_TEMPLATE = {
    "Deployment": "spec.template",
    "ReplicaSet": "spec.template",
    "StatefulSet": "spec.template",
    "DaemonSet": "spec.template",
    "Job": "spec.template",
}


def _check_kubernetes_semantics(m: Manifest) -> None:
    """API-server checks that the OpenAPI schema cannot express (the ones learners hit)."""
    obj, kind = m.obj, m.kind
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise error_at(m, "metadata.name", "missing required field 'name'")
    if kind in ("Service", "Namespace"):
        pattern, rule, limit = (
            (
                _DNS_1035,
                "an RFC 1035 label (lower-case letters, digits, '-', starting with a letter)",
                63,
            )
            if kind == "Service"
            else (_DNS_LABEL, "an RFC 1123 label (lower-case letters, digits, '-')", 63)
        )
    else:
        pattern, rule, limit = (
            _DNS_SUBDOMAIN,
            "an RFC 1123 subdomain (lower-case letters, digits, '-', '.')",
            253,
        )
    if not pattern.match(str(name)) or len(str(name)) > limit:
        raise error_at(m, "metadata.name", f"{name!r} is not {rule} of at most {limit} characters")
    _check_labels(m, meta.get("labels"), "metadata.labels")

    template_path = _WORKLOAD_TEMPLATE.get(kind)
    if template_path:
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        _check_labels(m, labels, f"{template_path}.metadata.labels")
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        for key, value in selector.items():
            if labels.get(key) != value:
                raise error_at(
                    m,
                    f"spec.selector.matchLabels[{json.dumps(key)}]"
                    if not re.fullmatch(r"[A-Za-z0-9_-]+", key)
                    else f"spec.selector.matchLabels.{key}",
                    f"selector {key}={value} does not match the template labels {labels}:"
                    " the Deployment could never find its own pods",
                )
        _check_pod_spec(m, template.get("spec") or {}, f"{template_path}.spec")
    elif kind == "Pod":
        _check_pod_spec(m, obj.get("spec") or {}, "spec")
    elif kind == "HorizontalPodAutoscaler":
        spec = obj.get("spec") or {}
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            raise error_at(m, "spec.minReplicas", f"minReplicas {low} is above maxReplicas {high}")


def _check_labels(m: Manifest, labels: Any, path: str) -> None:
    for key, value in (labels or {}).items():
        label_path = format_path([*path.split("."), key])
        prefix, _, name = str(key).rpartition("/")
        if (
            not _LABEL_NAME.match(name)
            or len(name) > 63
            or (prefix and not _DNS_SUBDOMAIN.match(prefix))
        ):
            raise error_at(m, label_path, f"{key!r} is not a valid label key")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            raise error_at(
                m,
                label_path,
                f"{value!r} is not a valid label value (at most 63 letters, digits, '-', '_', '.')",
            )


def _check_pod_spec(m: Manifest, spec: Mapping[str, Any], path: str) -> None:
    grace = spec.get("terminationGracePeriodSeconds", 30)
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            cpath = f"{path}.{group}[{i}]"
            resources = container.get("resources") or {}
            parsed: dict[str, dict[str, float]] = {}
            for section in ("requests", "limits"):
                for resource, value in (resources.get(section) or {}).items():
                    fpath = f"{cpath}.resources.{section}.{resource}"
                    try:
                        amount = to_amount(value)
                    except ValueError as exc:
                        raise error_at(m, fpath, str(exc)) from None
                    if amount < 0:
                        raise error_at(m, fpath, f"{value!r} must not be negative")
                    parsed.setdefault(section, {})[resource] = amount
            for resource, request in parsed.get("requests", {}).items():
                limit = parsed.get("limits", {}).get(resource)
                if limit is not None and request > limit:
                    raise error_at(
                        m,
                        f"{cpath}.resources.requests.{resource}",
                        f"request {resources['requests'][resource]!r} is above the limit"
                        f" {resources['limits'][resource]!r}",
                    )
            for j, port in enumerate(container.get("ports") or []):
                port_name = port.get("name")
                if port_name is not None and (
                    len(port_name) > 15
                    or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", port_name)
                ):
                    raise error_at(
                        m,
                        f"{cpath}.ports[{j}].name",
                        f"{port_name!r} is not a valid port name (at most 15 lower-case letters,"
                        " digits and '-')",
                    )
            sleep = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep")
            if isinstance(sleep, Mapping) and isinstance(sleep.get("seconds"), int):
                seconds = sleep["seconds"]
                if seconds < 0 or (isinstance(grace, int) and seconds > grace):
                    raise error_at(
                        m,
                        f"{cpath}.lifecycle.preStop.sleep.seconds",
                        f"{seconds} must be between 0 and terminationGracePeriodSeconds ({grace}):"
                        " the grace period includes the preStop hook",
                    )


def _short_host(host: str) -> str:
    return host.split(".", 1)[0]
