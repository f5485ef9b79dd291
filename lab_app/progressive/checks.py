"""The checks a canary must pass at every step, named and shaped like Flagger's metrics.

Flagger ships two built-in metrics, ``request-success-rate`` (percent of requests that did
not answer 5xx, ``thresholdRange.min``, typically 99) and ``request-duration`` (p99 latency
in milliseconds, ``thresholdRange.max``, typically 500), both computed from Istio's
Prometheus metrics for the canary workload over the analysis interval. The lab computes the
same two from the load generator's records, and adds ``gateway-success-rate``: the same
success rate read from the gateway Envoy's counters for the canary subset's cluster.

A check is given as a name (its defaults), a dict in Flagger's shape
(``{"name": "request-success-rate", "thresholdRange": {"min": 99}}``; also ``min``/``max``,
``scope`` and ``minRequests``) or a ``Check``. A check with fewer than ``min_requests``
samples in the window fails, as Flagger fails a metric whose query returns no value: a
canary that got no traffic has proven nothing. The default, 20, only catches a window
without traffic; it is not what makes a check trustworthy. That is the number of canary
requests per interval (QPS x interval x weight): with 20, a build failing 5 % of its
requests still passes a 99 % check 36 % of the time, with 200 only 0.2 % of the time
(``analysis.pass_probability``). Size the load and the interval for that, and keep the
expected count well above ``min_requests`` so a good canary is never failed for lack of
samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lab_app.errors import ConfigError
from lab_app.progressive.analysis import Window

SOURCES = ("load", "gateway")
METRICS = ("success_rate", "p99_ms")


@dataclass(frozen=True)
class Check:
    """One threshold on one metric of one source (see the module doc)."""

    name: str
    source: str  # "load" | "gateway"
    metric: str  # "success_rate" (percent) | "p99_ms"
    min: float | None = None
    max: float | None = None
    scope: str = "canary"  # load: "canary" | "all"; gateway: always the canary subset
    min_requests: int = 20

    def __post_init__(self) -> None:
        where = f"check {self.name!r}"
        if self.source not in SOURCES:
            raise ConfigError(f"{where}: source {self.source!r} is not one of {SOURCES}")
        if self.metric not in METRICS:
            raise ConfigError(f"{where}: metric {self.metric!r} is not one of {METRICS}")
        if self.min is None and self.max is None:
            raise ConfigError(f"{where}: give a threshold (min or max)")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ConfigError(f"{where}: {bound} must be a number, got {value!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{where}: min {self.min} is above max {self.max}")
        if self.metric == "success_rate":
            for limit in (self.min, self.max):
                if limit is not None and not 0 <= limit <= 100:
                    raise ConfigError(
                        f"{where}: a success rate is a percentage, 0..100 (99 = 99 %), got {limit}"
                    )
        if self.metric == "p99_ms" and self.source == "gateway":
            raise ConfigError(f"{where}: the gateway's counters have no latency; use source 'load'")
        if self.scope not in ("canary", "all"):
            raise ConfigError(f"{where}: scope {self.scope!r} is not 'canary' or 'all'")
        if self.source == "gateway" and self.scope != "canary":
            raise ConfigError(f"{where}: the gateway check reads the canary subset only")
        if (
            isinstance(self.min_requests, bool)
            or not isinstance(self.min_requests, int)
            or self.min_requests < 1
        ):
            raise ConfigError(
                f"{where}: min_requests must be an integer >= 1, got {self.min_requests!r}"
            )

    def threshold_text(self) -> str:
        unit = " %" if self.metric == "success_rate" else " ms"
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}{unit}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}{unit}")
        return " and ".join(parts)

    def evaluate(self, window: Window) -> CheckResult:
        """Judge ``window``: passed, or failed with the reason in words."""
        if self.source == "load":
            numbers = window.load.get(self.scope)
            samples = numbers.requests if numbers is not None else 0
            value = getattr(numbers, self.metric) if numbers is not None else math.nan
            what = f"{self.scope} requests" if self.scope == "canary" else "requests"
        else:
            counters = window.gateway.get("canary")
            if counters is None or not counters.found:
                return CheckResult(
                    self,
                    math.nan,
                    0,
                    False,
                    "the gateway exposes no counters for the canary subset",
                )
            samples, value, what = counters.completed, counters.success_rate, "gateway requests"
        if samples < self.min_requests:
            return CheckResult(
                self,
                value,
                samples,
                False,
                f"{samples} {what} in {window.seconds:.1f} s, fewer than {self.min_requests}: "
                "not enough to judge (is the load running? raise QPS or the interval)",
            )
        ok = not math.isnan(value)
        ok = ok and (self.min is None or value >= self.min)
        ok = ok and (self.max is None or value <= self.max)
        shown = f"{value:.2f} %" if self.metric == "success_rate" else f"{value:.1f} ms"
        reason = (
            f"{shown} over {samples} {what} ({'ok' if ok else 'wanted'} {self.threshold_text()})"
        )
        return CheckResult(self, value, samples, ok, reason)


@dataclass(frozen=True)
class CheckResult:
    check: Check
    value: float
    samples: int
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.check.name,
            "source": self.check.source,
            "metric": self.check.metric,
            "value": None if math.isnan(self.value) else round(self.value, 4),
            "samples": self.samples,
            "threshold": self.check.threshold_text(),
            "passed": self.passed,
            "reason": self.reason,
        }

    def __str__(self) -> str:
        return f"{self.check.name}: {'pass' if self.passed else 'FAIL'} {self.reason}"


BUILTIN: dict[str, Check] = {
    "request-success-rate": Check(
        "request-success-rate", source="load", metric="success_rate", min=99.0
    ),
    "request-duration": Check("request-duration", source="load", metric="p99_ms", max=500.0),
    "gateway-success-rate": Check(
        "gateway-success-rate", source="gateway", metric="success_rate", min=99.0
    ),
}
DEFAULT_CHECKS: tuple[str, ...] = tuple(BUILTIN)

_DICT_KEYS = {
    "name",
    "thresholdRange",
    "min",
    "max",
    "scope",
    "minRequests",
    "min_requests",
    "interval",
}


def parse_check(spec: str | Mapping[str, Any] | Check) -> Check:
    """One check from a name, a Flagger-style dict or a ``Check`` (ConfigError otherwise)."""
    if isinstance(spec, Check):
        return spec
    if isinstance(spec, str):
        return _builtin(spec)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"a check is a name ({', '.join(BUILTIN)}), a dict or a Check, "
            f"not {type(spec).__name__}"
        )
    unknown = set(spec) - _DICT_KEYS
    if unknown:
        raise ConfigError(
            f"check {spec.get('name', '?')!r}: unknown field(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_DICT_KEYS))})"
        )
    if "name" not in spec:
        raise ConfigError(f"check {dict(spec)!r} has no name")
    base = _builtin(str(spec["name"]))
    if "interval" in spec:
        raise ConfigError(
            f"check {base.name!r}: every check uses the cutover's interval_s (Flagger's "
            "analysis.interval); a per-metric interval is not supported"
        )
    changes: dict[str, Any] = {}
    threshold = spec.get("thresholdRange")
    if threshold is not None:
        if not isinstance(threshold, Mapping) or set(threshold) - {"min", "max"}:
            raise ConfigError(
                f"check {base.name!r}: thresholdRange is {{min: N}} and/or {{max: N}}, "
                f"got {threshold!r}"
            )
        changes.update({"min": threshold.get("min"), "max": threshold.get("max")})
    for key in ("min", "max"):
        if key in spec:
            changes[key] = spec[key]
    if "scope" in spec:
        changes["scope"] = spec["scope"]
    for key in ("minRequests", "min_requests"):
        if key in spec:
            changes["min_requests"] = spec[key]
    return replace(base, **changes)


def parse_checks(specs: Iterable[str | Mapping[str, Any] | Check] | str) -> tuple[Check, ...]:
    """Every check of a cutover; at least one, names unique."""
    if isinstance(specs, str | Mapping | Check):
        specs = [specs]
    try:
        checks = tuple(parse_check(s) for s in specs)
    except TypeError:
        raise ConfigError(f"checks must be a list, got {type(specs).__name__}") from None
    if not checks:
        raise ConfigError("checks: give at least one (a canary nobody checks is not a canary)")
    names = [c.name for c in checks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"checks: {', '.join(duplicates)} given twice")
    return checks


def evaluate(checks: Iterable[Check], window: Window) -> list[CheckResult]:
    return [c.evaluate(window) for c in checks]


def _builtin(name: str) -> Check:
    check = BUILTIN.get(name)
    if check is None:
        raise ConfigError(f"unknown check {name!r} (known: {', '.join(BUILTIN)})")
    return check
