"""Units of the Kubernetes and Istio APIs: durations (``"2s"``) and quantities (``"256Mi"``).

Both backends need them (the embedded kubelet enforces a memory limit, the Envoy
translation needs timeouts in seconds), and a learner's typo in one must fail with the
field named, so the parsers raise ``ManifestError``. ``to_seconds``/``to_amount`` raise a
plain ``ValueError`` for callers that word their own error.

:func:`go_duration` is the one reader of Go's duration syntax in the lab: Istio's
durations, Envoy's translation and the load generator's fortio-style ``-t 30s`` all use it;
they differ only in what else they accept (the load generator takes bare seconds).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from lab_app.errors import ManifestError

_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NUMBER_UNIT = r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)"
_DURATION_PART = re.compile(_NUMBER_UNIT)
_DURATION_PART_SPACED = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|ms|m|s|us|µs|ns)\s*")


def go_duration(text: str, *, spaced: bool = False) -> float | None:
    """Seconds in a Go duration (``time.ParseDuration``): a sequence of decimal numbers each
    with a unit h, m, s, ms, us (µs), ns, e.g. ``"1m30s"``, ``"1.5s"``, ``"500ms"``.

    ``None`` when ``text`` is not one (callers word their own error). No sign: nothing in
    the lab takes a negative duration. ``spaced`` also allows blanks between and after the
    parts (``"1m 30s"``), which the load generator has always accepted.
    """
    part = _DURATION_PART_SPACED if spaced else _DURATION_PART
    pos, total = 0, 0.0
    if not text:
        return None
    while pos < len(text):
        match = part.match(text, pos)
        if not match:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total


def parse_duration(value: Any, *, source: str = "", field: str = "") -> float:
    """Seconds in an Istio duration: ``"2s"``, ``"500ms"``, ``"1m"``, ``"1.5s"``, ``"1m30s"``.

    Istio accepts Go's duration syntax (a sequence of decimal numbers, each with a unit h,
    m, s, ms, us, ns), of which protobuf's JSON form (``"1.5s"``) is a case. A bare number
    is refused: Istio would refuse it too, and "2" could mean anything.
    """
    try:
        return to_seconds(value)
    except ValueError as exc:
        raise ManifestError(str(exc), source=source, field=field) from None


def to_seconds(value: Any) -> float:
    """:func:`parse_duration` raising ``ValueError`` (for callers that word their own error)."""
    if not isinstance(value, str):
        raise ValueError(f"a duration is a string such as '2s' or '500ms', got {value!r}")
    text = value.strip()
    if not text:
        raise ValueError("empty duration (e.g. '2s')")
    seconds = go_duration(text)
    if seconds is None:
        hint = f": add a unit, e.g. '{text}s'" if re.fullmatch(r"\d+(\.\d*)?", text) else ""
        raise ValueError(
            f"invalid duration {value!r}{hint} (units: h, m, s, ms, us, ns; e.g. '2s', '500ms')"
        )
    return seconds


_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: Any, *, source: str = "", field: str = "") -> float:
    """A Kubernetes quantity as a float: bytes for memory, cores for CPU.

    ``"256Mi"`` -> 268435456, ``"256M"`` -> 256000000, ``"1"`` -> 1, ``"500m"`` -> 0.5,
    ``"1e3"`` -> 1000. Grammar of k8s.io/apimachinery ``resource.Quantity``: binary suffixes
    Ki..Ei (powers of 1024), decimal n u m k M G T P E (powers of 1000), or an exponent.
    (``kubernetes.utils.parse_quantity`` does the same but importing the kubernetes client
    costs over a second, and it accepts text such as ``"NaN"`` or ``" 1"``.)
    """
    try:
        return to_amount(value)
    except ValueError as exc:
        raise ManifestError(str(exc), source=source, field=field) from None


def to_amount(value: Any) -> float:
    """:func:`parse_quantity` raising ``ValueError`` (for callers that word their own error)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"invalid quantity {value!r}")
        return float(value)
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if not match:
        hint = ""
        if isinstance(value, str) and re.fullmatch(r"[+-]?[\d.]+(mi|ki|gi|MB|mb|Mb|GB|KB)", value):
            hint = " (memory units are Ki, Mi, Gi (1024) or k, M, G (1000), case-sensitive)"
        raise ValueError(f"invalid quantity {value!r}{hint}; e.g. '256Mi', '500m', '1'")
    number = Decimal(match["number"])
    if match["binary"]:
        number *= Decimal(1024) ** _BINARY[match["binary"]]
    elif match["exponent"]:
        number *= Decimal(10) ** int(match["exponent"][1:])
    elif match["decimal"]:
        number *= Decimal(10) ** _DECIMAL[match["decimal"]]
    return float(number)
