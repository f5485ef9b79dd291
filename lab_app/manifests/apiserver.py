"""Checks the Kubernetes API server makes that its OpenAPI schema cannot express.

The schema says ``metadata.name`` is a string; the API server also wants a DNS name (an
RFC 1035 label for a Service). These are the rules learners hit: object names, label keys
and values, a Deployment's selector matching its own template labels, resource quantities
and requests <= limits, port names, a preStop sleep within the grace period, and an HPA's
minReplicas <= maxReplicas. Each failure names the field, like the API server's
``field.ErrorList`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from lab_app.manifests import istio_schema
from lab_app.manifests.model import Manifest, error_at, format_path
from lab_app.manifests.units import to_amount

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


def check_api_server_rules(m: Manifest) -> None:
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
