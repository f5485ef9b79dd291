"""jsonschema errors worded for a learner: one sentence per problem, with its dotted field.

jsonschema's own messages quote the whole failing instance and speak of "additional
properties"; a learner wants ``unknown field 'perTryTimout' (did you mean 'perTryTimeout'?)``
or ``expected a string, got 8080 (a number) (YAML reads it as a number: quote it...)``.
Used for both schema sources: the lab's Istio schema (:mod:`lab_app.manifests.istio_schema`,
whose ``x-istio-only`` and ``x-message`` keywords are read here) and the Kubernetes OpenAPI
schemas checked by kubernetes-validate (whose ValidationError is a jsonschema one).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from lab_app.errors import ManifestError
from lab_app.manifests.model import Manifest, error_at, format_path


def first_schema_error(validator: Any, m: Manifest) -> ManifestError | None:
    errors = list(validator.iter_errors(m.obj))
    if not errors:
        return None
    described = [describe(e) for e in errors]
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


def describe(error: Any) -> tuple[str, str]:
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
