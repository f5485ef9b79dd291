"""VirtualService matching -> Envoy route matches, and which VirtualServices bind where.

An ``HTTPMatchRequest`` (uri, headers, method, authority, queryParams, ignoreUriCase) becomes
an Envoy ``RouteMatch``; ``method`` and ``authority`` are the ``:method`` and ``:authority``
pseudo-headers, as istiod translates them. A VirtualService binds to a Gateway through
``spec.gateways`` (``NAMESPACE/NAME``, or a bare name in the VirtualService's namespace) and
to a server through its hosts (``*`` and ``*.domain`` wildcards). Anything the embedded
backend cannot reproduce is a ``ManifestError`` naming the field, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab_app.errors import ManifestError

__all__ = [
    "SUPPORTED_MATCH_KEYS",
    "gateway_refs",
    "host_matches",
    "reject_unsupported",
    "route_match",
]

SUPPORTED_MATCH_KEYS = {
    "name",
    "uri",
    "headers",
    "method",
    "authority",
    "queryParams",
    "ignoreUriCase",
    "port",
    "gateways",
}


def route_match(match: Mapping[str, Any] | None, *, source: str, path: str) -> dict[str, Any]:
    """One ``HTTPMatchRequest`` -> an Envoy ``RouteMatch`` (none: the catch-all ``/``)."""
    if not match:
        return {"prefix": "/"}
    reject_unsupported(match, SUPPORTED_MATCH_KEYS, "match", source=source, path=path)
    out: dict[str, Any] = {}
    uri = match.get("uri")
    if uri is None:
        out["prefix"] = "/"
    else:
        m = _string_match(uri, source=source, path=f"{path}.uri")
        if "exact" in m:
            out["path"] = m["exact"]
        elif "prefix" in m:
            out["prefix"] = m["prefix"]
        else:
            out["safe_regex"] = m["safe_regex"]
    if match.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = [
        {
            "name": hname,
            "string_match": _string_match(hspec, source=source, path=f"{path}.headers.{hname}"),
        }
        for hname, hspec in (match.get("headers") or {}).items()
    ]
    for key, pseudo_header in (("method", ":method"), ("authority", ":authority")):
        if key in match:
            headers.append(
                {
                    "name": pseudo_header,
                    "string_match": _string_match(match[key], source=source, path=f"{path}.{key}"),
                }
            )
    if headers:
        out["headers"] = headers
    params = [
        {
            "name": qname,
            "string_match": _string_match(qspec, source=source, path=f"{path}.queryParams.{qname}"),
        }
        for qname, qspec in (match.get("queryParams") or {}).items()
    ]
    if params:
        out["query_parameters"] = params
    return out


def reject_unsupported(
    spec: Mapping[str, Any], supported: set[str], what: str, *, source: str, path: str
) -> None:
    """A ``ManifestError`` naming the first field of ``spec`` the embedded backend lacks."""
    unknown = set(spec) - supported
    if unknown:
        raise ManifestError(
            f"{what} field(s) {', '.join(sorted(unknown))} not supported by the embedded backend",
            source=source,
            field=f"{path}.{sorted(unknown)[0]}",
        )


def _string_match(spec: Any, *, source: str, path: str) -> dict[str, Any]:
    """Istio's ``StringMatch`` (exactly one of exact, prefix, regex) -> Envoy's."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ManifestError(
            "expected exactly one of exact, prefix, regex", source=source, field=path
        )
    ((kind, value),) = spec.items()
    if kind == "exact":
        return {"exact": str(value)}
    if kind == "prefix":
        return {"prefix": str(value)}
    if kind == "regex":
        return {"safe_regex": {"regex": str(value)}}
    raise ManifestError(
        f"match type {kind!r} is not supported (exact, prefix, regex)",
        source=source,
        field=f"{path}.{kind}",
    )


def gateway_refs(gateways: Any, namespace: str) -> set[str]:
    """``spec.gateways`` (or a match's ``gateways``) as ``NAMESPACE/NAME`` references."""
    out = set()
    for g in gateways or []:
        g = str(g)
        out.add(g if "/" in g else f"{namespace}/{g}")
    return out


def host_matches(pattern: str, host: str) -> bool:
    """Whether a Gateway server host (``*``, ``*.domain``, exact) admits a VirtualService host."""
    if pattern == "*" or host == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or (host.startswith("*.") and host.endswith(pattern[1:]))
    return pattern == host
