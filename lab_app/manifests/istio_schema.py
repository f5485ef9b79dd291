"""JSON Schemas for the Istio resources the lab understands (``networking.istio.io/v1``).

Kubernetes kinds are checked against Kubernetes' own OpenAPI schemas (kubernetes-validate);
Istio ships CRDs that a laptop without a cluster does not have, so the lab describes the
subset of Istio's API it implements here, field by field, following the Istio reference
("Virtual Service", "Destination Rule", "Gateway" at istio.io/latest/docs/reference/config/
networking/). Every object is closed (``additionalProperties: false``): a typo such as
``perTryTimout`` is an error, as it is for ``kubectl apply`` against Istio's CRDs.

Two non-standard keywords are read by :mod:`lab_app.manifests.schema_errors` when it words
an error (jsonschema ignores unknown keywords):

- ``x-istio-only``: fields that are valid Istio but that the lab does not implement, so the
  message says "valid Istio, not implemented by the lab" rather than "unknown field".
- ``x-message``: the sentence to show when this (sub)schema fails.

Formats ``duration``, ``retry-on`` and ``regex`` are checked by :mod:`lab_app.manifests.istio`,
which builds the validator from :func:`schema_for`.
"""

from __future__ import annotations

from typing import Any

ISTIO_GROUP = "networking.istio.io"
ISTIO_API_VERSION = f"{ISTIO_GROUP}/v1"
ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule")

# RFC 1123 label, as Istio requires for subset names and Kubernetes for most object names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Schema = dict[str, Any]


def _obj(
    properties: Schema,
    *,
    required: tuple[str, ...] = (),
    istio_only: tuple[str, ...] = (),
    message: str = "",
    **extra: Any,
) -> Schema:
    """A closed object: only ``properties`` are allowed; ``message`` becomes ``x-message``."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if istio_only:
        schema["x-istio-only"] = list(istio_only)
    if message:
        schema["x-message"] = message
    schema.update(extra)
    return schema


def _str_map(values: Schema | None = None) -> Schema:
    return {"type": "object", "additionalProperties": values or {"type": "string"}}


def _list(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
UINT: Schema = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
PERCENT_INT: Schema = {"type": "integer", "minimum": 0, "maximum": 100}
DURATION: Schema = {"type": "string", "format": "duration"}
PERCENT: Schema = _obj({"value": {"type": "number", "minimum": 0, "maximum": 100}})

METADATA: Schema = _obj(
    {
        "name": {
            "type": "string",
            "pattern": DNS_SUBDOMAIN,
            "maxLength": 253,
            "x-message": "a name is lower-case letters, digits, '-' and '.' (RFC 1123)",
        },
        "namespace": STRING,
        "labels": _str_map(),
        "annotations": _str_map(),
    },
    required=("name",),
    istio_only=(
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "finalizers",
        "ownerReferences",
        "managedFields",
    ),
)

# StringMatch: exactly one of exact / prefix / regex.
STRING_MATCH: Schema = _obj(
    {"exact": STRING, "prefix": STRING, "regex": {"type": "string", "format": "regex"}},
    minProperties=1,
    maxProperties=1,
    message="a string match sets exactly one of 'exact', 'prefix' or 'regex'",
)

PORT_SELECTOR: Schema = _obj({"number": PORT})

DESTINATION: Schema = _obj(
    {
        "host": {"type": "string", "minLength": 1},
        "subset": {"type": "string", "pattern": DNS_LABEL},
        "port": PORT_SELECTOR,
    },
    required=("host",),
)

HEADER_OPERATIONS: Schema = _obj(
    {"set": _str_map(), "add": _str_map(), "remove": _list(STRING)},
)
HEADERS: Schema = _obj({"request": HEADER_OPERATIONS, "response": HEADER_OPERATIONS})

HTTP_MATCH: Schema = _obj(
    {
        "name": STRING,
        "uri": STRING_MATCH,
        "method": STRING_MATCH,
        "headers": _str_map(STRING_MATCH),
        "queryParams": _str_map(STRING_MATCH),
        "ignoreUriCase": BOOL,
    },
    istio_only=(
        "scheme",
        "authority",
        "port",
        "sourceLabels",
        "gateways",
        "withoutHeaders",
        "sourceNamespace",
        "statPrefix",
    ),
)

HTTP_ROUTE_DESTINATION: Schema = _obj(
    {
        "destination": DESTINATION,
        # Istio: 0-100, relative (share = weight / sum); ignored with a single destination.
        "weight": PERCENT_INT,
        "headers": HEADERS,
    },
    required=("destination",),
)

HTTP_RETRY: Schema = _obj(
    {
        "attempts": {"type": "integer", "minimum": 0},
        "perTryTimeout": DURATION,
        "retryOn": {"type": "string", "format": "retry-on"},
    },
    istio_only=("retryRemoteLocalities", "retryIgnorePreviousHosts", "backoff"),
)

HTTP_FAULT: Schema = _obj(
    {
        "delay": _obj({"fixedDelay": DURATION, "percentage": PERCENT}, required=("fixedDelay",)),
        "abort": _obj(
            {
                "httpStatus": {"type": "integer", "minimum": 200, "maximum": 599},
                "percentage": PERCENT,
            },
            required=("httpStatus",),
            istio_only=("grpcStatus", "http2Error"),
        ),
    },
    minProperties=1,
)

HTTP_ROUTE: Schema = _obj(
    {
        "name": STRING,
        "match": _list(HTTP_MATCH),
        "route": _list(HTTP_ROUTE_DESTINATION, minItems=1),
        "timeout": DURATION,
        "retries": HTTP_RETRY,
        "fault": HTTP_FAULT,
        "mirror": DESTINATION,
        "mirrorPercentage": PERCENT,
        "headers": HEADERS,
    },
    required=("route",),
    istio_only=("redirect", "directResponse", "delegate", "rewrite", "corsPolicy", "mirrors"),
)

VIRTUAL_SERVICE_SPEC: Schema = _obj(
    {
        "hosts": _list({"type": "string", "minLength": 1}, minItems=1),
        "gateways": _list({"type": "string", "minLength": 1}),
        "http": _list(HTTP_ROUTE, minItems=1),
    },
    required=("hosts", "http"),
    istio_only=("tcp", "tls", "exportTo"),
)

CONNECTION_POOL: Schema = _obj(
    {
        "tcp": _obj(
            {"maxConnections": UINT, "connectTimeout": DURATION},
            istio_only=("tcpKeepalive", "maxConnectionDuration", "idleTimeout"),
        ),
        "http": _obj(
            {
                "http1MaxPendingRequests": UINT,
                "http2MaxRequests": UINT,
                "maxRequestsPerConnection": UINT,
                "maxRetries": UINT,
                "idleTimeout": DURATION,
            },
            istio_only=("h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams"),
        ),
    },
)

OUTLIER_DETECTION: Schema = _obj(
    {
        "consecutive5xxErrors": UINT,
        "consecutiveGatewayErrors": UINT,
        "consecutiveLocalOriginFailures": UINT,
        "splitExternalLocalOriginErrors": BOOL,
        "interval": DURATION,
        "baseEjectionTime": DURATION,
        "maxEjectionPercent": PERCENT_INT,
        "minHealthPercent": PERCENT_INT,
    },
    istio_only=("consecutiveErrors",),
)

LOAD_BALANCER: Schema = _obj(
    {
        "simple": {
            "enum": [
                "UNSPECIFIED",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
                "LEAST_CONN",
            ]
        }
    },
    istio_only=("consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"),
)

TRAFFIC_POLICY: Schema = _obj(
    {
        "connectionPool": CONNECTION_POOL,
        "outlierDetection": OUTLIER_DETECTION,
        "loadBalancer": LOAD_BALANCER,
    },
    istio_only=("tls", "portLevelSettings", "tunnel", "proxyProtocol", "retryBudget"),
)

SUBSET: Schema = _obj(
    {
        "name": {
            "type": "string",
            "pattern": DNS_LABEL,
            "x-message": "a subset name is a DNS label: lower-case letters, digits and '-'",
        },
        "labels": _str_map(),
        "trafficPolicy": TRAFFIC_POLICY,
    },
    required=("name",),
)

DESTINATION_RULE_SPEC: Schema = _obj(
    {
        "host": {"type": "string", "minLength": 1},
        "trafficPolicy": TRAFFIC_POLICY,
        "subsets": _list(SUBSET),
    },
    required=("host",),
    istio_only=("exportTo", "workloadSelector"),
)

GATEWAY_SPEC: Schema = _obj(
    {
        "selector": _str_map(),
        "servers": _list(
            _obj(
                {
                    "port": _obj(
                        {
                            "number": PORT,
                            "name": STRING,
                            # The lab routes HTTP only; HTTPS/TLS would need `tls`.
                            "protocol": {"enum": ["HTTP", "HTTP2", "GRPC"]},
                        },
                        required=("number", "protocol"),
                        istio_only=("targetPort",),
                    ),
                    "hosts": _list({"type": "string", "minLength": 1}, minItems=1),
                    "name": STRING,
                },
                required=("port", "hosts"),
                istio_only=("tls", "bind", "defaultEndpoint"),
            ),
            minItems=1,
        ),
    },
    required=("servers",),
)

_SPECS: dict[str, Schema] = {
    "VirtualService": VIRTUAL_SERVICE_SPEC,
    "DestinationRule": DESTINATION_RULE_SPEC,
    "Gateway": GATEWAY_SPEC,
}


def schema_for(kind: str, api_version: str = ISTIO_API_VERSION) -> Schema:
    """The whole-object schema of an Istio ``kind`` (a new dict each call)."""
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": _SPECS[kind],
        },
        required=("apiVersion", "kind", "metadata", "spec"),
        istio_only=("status",),
    )
