"""Property-based check of the service against its own OpenAPI schema (schemathesis, in-process).

Every operation is fuzzed with valid and invalid inputs; responses must match what the schema
documents (status codes, content types, bodies), and a 5xx is allowed only where the schema
documents it (retry's 503, longTask's 500 when saturated). The fault endpoints are on, except
/k8s/memoryleak (it would SIGKILL the test process); waiting times are clamped so the run stays
short, and /k8s/shutdown only records the request.
"""

from __future__ import annotations

import math
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from lab_app.service.app import create_app
from lab_app.service.config import ServiceConfig
from lab_app.service.lifecycle import ServiceState

MAX_WAIT_SECONDS = 0.01  # clamp for generated `seconds`: the schema allows up to 60 s
WAITING_OPERATIONS = {"/k8s/longTask", "/k8s/delayRetry", "/k8s/fullgc"}

CONFIG = ServiceConfig(
    app_version="v1",
    image_id="schema-test",
    pod_name="schema-test",
    enable_fault_endpoints=True,
    fullgc_seconds=0.0,
)
STATE = ServiceState(CONFIG)
SHUTDOWN_REQUESTS: list[str] = []
STATE.request_shutdown = SHUTDOWN_REQUESTS.append
APP = create_app(CONFIG, state=STATE, longtask_queue_timeout=0.5)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/k8s/memoryleak")


def only_documented_server_errors(ctx: Any, response: Any, case: Any) -> None:
    """A 5xx must be one the operation documents (``not_a_server_error`` forbids them all)."""
    if response.status_code >= 500:
        documented = set(case.operation.definition.raw.get("responses", {}))
        assert str(response.status_code) in documented, (
            f"{case.operation.label} answered an undocumented {response.status_code}"
        )


def clamp_waits(case: Any) -> None:
    """Keep generated waits short; leave invalid values (negative, text) as generated."""
    if case.path not in WAITING_OPERATIONS:
        return
    query = case.query if isinstance(case.query, dict) else None
    if query is None:
        case.query = query = {}
    if "seconds" not in query:
        query["seconds"] = MAX_WAIT_SECONDS  # the defaults are 1..10 s
        return
    seconds = query["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
        return
    try:
        value = float(seconds)  # some phases send the number as text
    except ValueError:
        return
    if math.isfinite(value) and value > MAX_WAIT_SECONDS:
        query["seconds"] = MAX_WAIT_SECONDS


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_service_conforms_to_its_openapi_schema(case: Any) -> None:
    clamp_waits(case)
    case.call_and_validate(
        excluded_checks=[not_a_server_error],
        additional_checks=[only_documented_server_errors],
    )
