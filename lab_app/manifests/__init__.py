"""Load and validate the lab's manifests, the single source of truth for both backends.

A backend never trusts a manifest it has not seen through here, so a typo fails at once
with the file, the document, the line and the dotted field path, instead of as a pod that
never becomes ready or a route that silently answers 503.

Sources (``load_manifests`` / ``load_documents``):
  - a path to a file or a directory (recursive, sorted, ``*.yaml``/``*.yml``). A relative
    path that does not exist from the working directory is also looked up from the repo
    root and from ``manifests/``, so a notebook can say ``load_manifests("deployment.yaml")``;
  - YAML text, one or more documents (``---``);
  - a dict, or a list of dicts.
Documents whose ``apiVersion`` is ``kind.x-k8s.io/...`` (``kind-cluster.yaml``) configure
the kind tool, not the cluster, and are skipped. Empty documents are skipped.

What is returned: ``load_manifests`` returns plain dicts (the contract in
docs/architecture.md), deep copies with no key added. ``load_documents`` returns the same
objects wrapped in :class:`Manifest` with their origin (file, document index, field lines),
for callers that want to report where something came from.

Validation:
  - Kubernetes kinds: the OpenAPI schemas of Kubernetes ``KUBERNETES_VERSION`` shipped by
    kubernetes-validate, strict mode (unknown fields are errors), plus a few checks the API
    server makes that a schema cannot express (names, label values, selector vs template
    labels, resource quantities and requests <= limits, preStop sleep <= grace period,
    HPA min <= max). Removed API versions (``autoscaling/v2beta1``...) get a message that
    names the version to use.
  - Istio kinds (Gateway, VirtualService, DestinationRule of ``networking.istio.io/v1``):
    the lab's field schema in :mod:`lab_app.manifests.istio_schema`, durations, ``retryOn`` values,
    weights (0..100, not all 0), unique subset names. ``v1beta1`` and ``v1alpha3`` (the
    original demo's), which Istio still serves, are accepted with a :class:`ManifestWarning`
    naming ``v1`` (:func:`deprecated_api`).
  - When one source holds VirtualServices and DestinationRules, a route to a subset the
    DestinationRules do not define is a :class:`ManifestWarning` (``istioctl analyze``
    IST0101), not an error: Istio accepts it and Envoy answers 503 NC.
    :func:`route_problems` lists such routes; :func:`check_routes` raises on the first one
    (the embedded backend's ``strict_routes=True``).
Errors are :class:`lab_app.errors.ManifestError` (``source`` = file, ``field`` = dotted
path); the first problem found is reported. ``err.line`` and ``err.document`` (0-based)
are set when known.

Helpers: :func:`parse_duration` (Istio/protobuf durations) and :func:`parse_quantity`
(Kubernetes quantities), both raising ``ManifestError``; the names and route shares every
part of the lab agrees on (:mod:`~lab_app.manifests.names`, :mod:`~lab_app.manifests.routing`);
Pod Security admission (:mod:`~lab_app.manifests.pod_security`).

Modules: ``loading`` (sources -> documents), ``model`` (Manifest, error location),
``validate`` (dispatch by kind), ``kubernetes`` (the kubernetes-validate bridge),
``apiserver`` (API-server rules), ``istio`` and ``istio_schema`` (Istio kinds),
``route_check`` (VirtualService vs DestinationRule), ``schema_errors`` (jsonschema
wording), ``units``, ``names``, ``routing``, ``pod_security`` and
``pod_security_standards``. Import from here; the modules are the implementation.
"""

from __future__ import annotations

from lab_app.manifests.istio import ISTIO_API_VERSION, ISTIO_KINDS, deprecated_api
from lab_app.manifests.kubernetes import KUBERNETES_VERSION
from lab_app.manifests.loading import load_documents, load_manifests, validate_object
from lab_app.manifests.model import Manifest, ManifestWarning, format_path
from lab_app.manifests.names import (
    DEFAULT_SERVICE,
    format_ref,
    local_name,
    short_name,
    split_ref,
)
from lab_app.manifests.route_check import RouteProblem, check_routes, route_problems
from lab_app.manifests.routing import destination_shares, virtualservice_shares, weight_shares
from lab_app.manifests.units import parse_duration, parse_quantity
from lab_app.paths import MANIFESTS_DIR

__all__ = [
    "DEFAULT_SERVICE",
    "ISTIO_API_VERSION",
    "ISTIO_KINDS",
    "KUBERNETES_VERSION",
    "MANIFESTS_DIR",
    "Manifest",
    "ManifestWarning",
    "RouteProblem",
    "check_routes",
    "deprecated_api",
    "destination_shares",
    "format_path",
    "format_ref",
    "load_documents",
    "load_manifests",
    "local_name",
    "parse_duration",
    "parse_quantity",
    "route_problems",
    "short_name",
    "split_ref",
    "validate_object",
    "virtualservice_shares",
    "weight_shares",
]
