"""istiod's route retry policy, and how it depends on the Istio version.

Retries decide whether a request that meets a dying pod during a rollout reaches the client as
an error, so the lab reproduces istiod's policy exactly (``pilot/pkg/networking/core/route/
retry/retry.go``, ``ConvertPolicy``):

- With ``retries`` unset a route gets ``num_retries: 2``, ``retry_on: connect-failure,
  refused-stream,unavailable,cancelled,retriable-status-codes``,
  ``retry_host_predicate: previous_hosts`` and ``host_selection_retry_max_attempts: 5``.
- Version dependence: before Istio 1.24 the default also retried ``503``
  (``retriable_status_codes: [503]``); since 1.24 ``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY``
  (``pilot/pkg/features``) defaults to true and no status code is retried. The caller passes
  the cluster's version profile's ``default_retriable_status_codes`` as
  ``default_status_codes``.
- ``attempts: 0`` disables retries; otherwise the default is overridden field by field
  (``attempts`` -> ``num_retries``, ``retryOn`` -> ``retry_on`` with numeric parts moved to
  ``retriable_status_codes``, ``perTryTimeout`` -> ``per_try_timeout``); ``previous_hosts``
  stays unless ``retryIgnorePreviousHosts: false``.
- A sidecar's inbound route (``BuildDefaultHTTPInboundRoute``) retries
  ``reset-before-request`` twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lab_app.cluster.embedded.envoy.names import envoy_duration, parse_duration

__all__ = ["DEFAULT_RETRY_ON", "PREVIOUS_HOSTS", "inbound_retry_policy", "retry_policy"]

PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
        "PreviousHostsPredicate"
    },
}
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def retry_policy(
    retries: Mapping[str, Any] | None,
    *,
    source: str = "",
    path: str = "retries",
    default_status_codes: Sequence[int] = (),
) -> dict[str, Any] | None:
    """Istio's ``ConvertPolicy``: the default policy, overridden by the VirtualService's fields.

    ``default_status_codes``: the default policy's ``retriable_status_codes`` -- ``(503,)``
    before Istio 1.24 (``VersionProfile.default_retriable_status_codes``), none since."""
    policy: dict[str, Any] = {
        "num_retries": 2,
        "retry_on": DEFAULT_RETRY_ON,
        "retry_host_predicate": [PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": 5,
    }
    if default_status_codes:
        policy["retriable_status_codes"] = [int(c) for c in default_status_codes]
    if retries is None:
        return policy
    attempts = int(retries.get("attempts", 0) or 0)
    if attempts <= 0:
        return None
    policy["num_retries"] = attempts
    retry_on = str(retries.get("retryOn", "") or "")
    if retry_on:
        conditions, codes = _split_retry_on(retry_on)
        policy["retry_on"] = ",".join(conditions)
        policy.pop("retriable_status_codes", None)  # retryOn's codes replace the default's
        if codes:
            policy["retriable_status_codes"] = codes
    if "perTryTimeout" in retries:
        policy["per_try_timeout"] = envoy_duration(
            parse_duration(
                retries["perTryTimeout"], source=source, field_path=f"{path}.perTryTimeout"
            )
        )
    if retries.get("retryIgnorePreviousHosts") is False:
        policy.pop("retry_host_predicate")
    return policy


def _split_retry_on(retry_on: str) -> tuple[list[str], list[int]]:
    """``retryOn`` -> (Envoy ``retry_on`` conditions, status codes), as istiod splits it.

    A status code in ``retryOn`` (``5xx,503``) only takes effect through Envoy's
    ``retriable-status-codes`` condition, which is added when a code is present."""
    conditions: list[str] = []
    codes: list[int] = []
    for part in (p.strip() for p in retry_on.split(",")):
        if not part:
            continue
        if part.isdigit() and 100 <= int(part) <= 599:
            codes.append(int(part))
        else:
            conditions.append(part)
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    return conditions, codes


def inbound_retry_policy() -> dict[str, Any]:
    """istiod's default inbound route retry: a request reset before it reached the app."""
    return {"retry_on": "reset-before-request", "num_retries": 2}
