"""Kubernetes kinds against Kubernetes' own OpenAPI schemas, through kubernetes-validate.

kubernetes-validate ships the OpenAPI schemas of each Kubernetes release and validates an
object with jsonschema, in strict mode here (unknown fields are errors, as for ``kubectl
apply --validate=strict``), against ``KUBERNETES_VERSION`` (the newest schemas it has when
older). What a schema cannot express but the API server refuses is checked afterwards by
:mod:`lab_app.manifests.apiserver`. API versions Kubernetes stopped serving
(``autoscaling/v2beta1``...) are refused with the version to use; an unknown kind gets a
"did you mean". Results are cached by content, since backends re-apply the same files.
"""

from __future__ import annotations

import difflib
import json
import warnings
from functools import cache, lru_cache
from typing import Any

from lab_app.manifests.apiserver import check_api_server_rules
from lab_app.manifests.istio import ISTIO_API_VERSION, ISTIO_KINDS
from lab_app.manifests.model import Manifest, ManifestWarning, error_at
from lab_app.manifests.schema_errors import describe

KUBERNETES_VERSION = "1.33"

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


def validate_kubernetes(m: Manifest) -> None:
    """Raise the first problem of a Kubernetes object (see module doc)."""
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
    check_api_server_rules(m)


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
        return "invalid", describe(exc)
    return "ok", None
