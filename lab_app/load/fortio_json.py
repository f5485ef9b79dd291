"""fortio's JSON result document, written from and read back into :class:`LoadResults`.

``to_fortio_json`` writes every field of fortio's ``fhttp.HTTPRunnerResults`` (with the embedded
``periodic.RunnerResults`` and ``HTTPOptions`` flattened, as Go's encoding/json does), with
fortio's names, types and histogram dividers; see docs/fidelity.md and tests/load/data/. The
extras fortio lacks travel under the key ``zdlab``, which fortio's UI ignores, and
``fields_from_fortio_json`` reads them back, so a lab document survives a round trip exactly
while a genuine fortio document (no ``zdlab``) still reads.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_app.errors import ConfigError
from lab_app.load.histograms import DURATION_DIVIDER, histogram_data
from lab_app.load.options import DEFAULT_PERCENTILES, format_duration, parse_duration
from lab_app.load.records import ERROR_CLASSES

if TYPE_CHECKING:
    from lab_app.load.results import LoadResults

VERSION = "zdlab-load 0.1"
#: The fortio release whose JSON fields (periodic/periodic.go, fhttp/httprunner.go,
#: fhttp/http_client.go, stats/stats.go) ``to_fortio_json`` reproduces.
FORTIO_JSON_VERSION = "1.75.2"


def to_fortio_json(results: LoadResults) -> dict[str, Any]:
    """fortio's ``HTTPRunnerResults`` JSON (every field, fortio's names, types and order).

    ``periodic.RunnerResults`` and ``HTTPOptions`` are embedded structs in Go, so their
    fields sit at the top level, as fortio writes them. Options the lab does not have keep
    fortio's zero values (no payload, no TLS files, keep-alive on). Go's float64 fields are
    JSON numbers, its ``time.Duration`` fields integer nanoseconds. The lab's extras are
    under ``zdlab``.
    """
    return {
        # periodic.RunnerResults (periodic/periodic.go)
        "RunType": "HTTP",
        "Labels": results.label,
        "StartTime": _rfc3339(results.start_time),
        "RequestedQPS": "max" if results.requested_qps <= 0 else f"{results.requested_qps:.9g}",
        "RequestedDuration": requested_duration_text(results),
        "ActualQPS": results.actual_qps,
        "ActualDuration": round(results.actual_duration * 1e9),
        "NumThreads": results.num_threads,
        "Version": VERSION,
        "DurationHistogram": dict(results.duration_histogram),
        "ErrorsDurationHistogram": dict(results.errors_duration_histogram),
        "Exactly": results.exactly,
        "Jitter": results.jitter,
        "Uniform": results.uniform,
        "NoCatchUp": results.nocatchup,
        "RunID": 0,
        "AccessLoggerInfo": "",
        "ID": _run_id(results.start_time, results.label),
        # fhttp.HTTPRunnerResults (fhttp/httprunner.go)
        "RetCodes": {str(code): n for code, n in sorted(results.codes.items())},
        "IPCountMap": dict(results.ip_count_map),
        # fhttp.HTTPOptions, embedded (fhttp/http_client.go), with its TLSOptions first
        "Insecure": False,
        "MTLS": False,
        "CACert": "",
        "Cert": "",
        "Key": "",
        "UnixDomainSocket": "",
        "URL": results.url,
        "NumConnections": results.num_threads,
        "Compression": False,
        "DisableFastClient": results.engine == "httpx",  # httpx plays fortio's std client
        "HTTP10": False,
        "H2": False,
        "DisableKeepAlive": False,
        "AllowHalfClose": False,
        "FollowRedirects": False,
        "Resolve": "",
        "HTTPReqTimeOut": round(results.timeout * 1e9),
        "UserCredentials": "",
        "ContentType": "",
        "Payload": None,
        "MethodOverride": "",
        "LogErrors": False,
        "SequentialWarmup": False,
        "ConnReuseRange": [0, 0],
        "NoResolveEachConn": False,
        "Offset": 0,
        "Resolution": DURATION_DIVIDER,
        # back to fhttp.HTTPRunnerResults
        "Sizes": dict(results.sizes),
        "HeaderSizes": dict(results.header_sizes),
        "Sockets": list(results.sockets),
        "SocketCount": results.socket_count,
        "ConnectionStats": dict(results.connection_stats) or histogram_data([]),
        "AbortOn": 0,
        "zdlab": {
            "fortio_json_version": FORTIO_JSON_VERSION,
            "timeout_s": results.timeout,
            "requested_percentiles": list(results.requested_percentiles),
            "requests": results.requests,
            "non_2xx": results.non_2xx,
            "errors": dict(results.errors),
            "fortio_retry": results.fortio_retry,
            "retried_reused": results.retried_reused,
            "skipped_slots": results.skipped_slots,
            "by_version": dict(results.by_version),
            "by_flags": dict(results.by_flags),
            "corrected_percentiles": list(results.corrected_percentiles),
            "loop_lag": results.loop_lag,
            "timeline": results.timeline_rows,
            "engine": results.engine,
            "done": results.done,
            "stopped_early": results.stopped_early,
            "client_cpu_s": results.client_cpu_s,
            "start_time_unix": results.start_time,
            "actual_duration_s": results.actual_duration,
            "requested_duration_s": results.requested_duration,
            "requested_qps": results.requested_qps,
        },
    }


def requested_duration_text(results: LoadResults) -> str:
    """fortio's ``RequestedDuration`` (periodic.go ``runQPSSetup`` / ``runMaxQPSSetup``)."""
    if results.exactly:
        text = f"exactly {results.exactly} calls"
        if results.requests != results.exactly:
            text += f", interrupted after {results.requests}"
        return text
    if results.requested_duration > 0:
        return format_duration(results.requested_duration)
    return "until stop" if results.requested_qps > 0 else ""


def fields_from_fortio_json(doc: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """``LoadResults``' fields from fortio's JSON (a dict, JSON text or a file path).

    Keeps the ``zdlab`` extras; without them (a document fortio wrote) every code -1 counts as
    error class ``other`` and the requested duration is parsed back from fortio's text.
    """
    if isinstance(doc, os.PathLike) or (isinstance(doc, str) and not doc.lstrip().startswith("{")):
        try:
            doc = json.loads(Path(doc).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"fortio JSON {doc}: {exc}") from None
    elif isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"fortio JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("RunType") not in ("HTTP", None):
        raise ConfigError("fortio JSON: expected an object with RunType 'HTTP'")
    for key in ("StartTime", "ActualDuration", "NumThreads", "DurationHistogram", "RetCodes"):
        if key not in doc:
            raise ConfigError(f"fortio JSON: missing field {key}")
    extra = doc.get("zdlab") or {}
    codes = {int(k): int(v) for k, v in doc["RetCodes"].items()}
    requests = int(extra.get("requests", doc["DurationHistogram"].get("Count", 0)))
    qps_text = str(doc.get("RequestedQPS", "0"))
    requested_qps = extra.get("requested_qps", 0.0 if qps_text == "max" else float(qps_text or 0))
    if "requested_duration_s" in extra:
        requested_duration = float(extra["requested_duration_s"])
    else:
        text = str(doc.get("RequestedDuration", ""))
        requested_duration = 0.0
        if text and not text.startswith(("exactly", "until")):
            requested_duration = parse_duration(text, name="RequestedDuration")
    pcts = extra.get("requested_percentiles") or [
        p["Percentile"] for p in doc["DurationHistogram"].get("Percentiles") or []
    ]
    errors = dict.fromkeys(ERROR_CLASSES, 0)
    errors.update({k: int(v) for k, v in (extra.get("errors") or {}).items()})
    if not extra and codes.get(-1):
        errors["other"] = codes[-1]
    timeout = extra.get("timeout_s")
    if timeout is None:
        timeout = (doc.get("HTTPReqTimeOut") or 3e9) / 1e9
    return dict(
        url=str(doc.get("URL", "")),
        label=str(doc.get("Labels", "")),
        start_time=float(extra.get("start_time_unix", _parse_rfc3339(doc["StartTime"]))),
        requested_qps=float(requested_qps),
        requested_duration=requested_duration,
        exactly=int(doc.get("Exactly", 0)),
        num_threads=int(doc["NumThreads"]),
        uniform=bool(doc.get("Uniform", False)),
        jitter=bool(doc.get("Jitter", False)),
        nocatchup=bool(doc.get("NoCatchUp", False)),
        timeout=float(timeout),
        requested_percentiles=tuple(float(p) for p in pcts) or DEFAULT_PERCENTILES,
        actual_duration=float(extra.get("actual_duration_s", doc["ActualDuration"] / 1e9)),
        requests=requests,
        codes=codes,
        errors=errors,
        by_version=dict(extra.get("by_version") or {}),
        by_flags=dict(extra.get("by_flags") or {}),
        sockets=[int(s) for s in doc.get("Sockets") or []],
        duration_histogram=dict(doc["DurationHistogram"]),
        errors_duration_histogram=dict(doc.get("ErrorsDurationHistogram") or {}),
        sizes=dict(doc.get("Sizes") or {}),
        header_sizes=dict(doc.get("HeaderSizes") or {}),
        corrected_percentiles=list(extra.get("corrected_percentiles") or []),
        loop_lag=dict(extra.get("loop_lag") or {}),
        timeline_rows=_restore_rows(extra.get("timeline") or []),
        engine=str(extra.get("engine", "fortio")),
        done=bool(extra.get("done", True)),
        stopped_early=bool(extra.get("stopped_early", False)),
        client_cpu_s=float(extra.get("client_cpu_s", 0.0)),
        fortio_retry=bool(extra.get("fortio_retry", False)),
        retried_reused=int(extra.get("retried_reused", 0)),
        skipped_slots=int(extra.get("skipped_slots", 0)),
        ip_count_map={str(k): int(v) for k, v in (doc.get("IPCountMap") or {}).items()},
        connection_stats=dict(doc.get("ConnectionStats") or {}),
    )


def save_fortio_json(results: LoadResults, path: str | os.PathLike[str]) -> Path:
    """Write the fortio JSON (atomically: a reader never sees half a file)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(to_fortio_json(results), indent=2) + "\n")
    os.replace(tmp, target)
    return target


def _rfc3339(wall: float) -> str:
    """Like Go's ``time.Time`` in JSON (RFC 3339, fraction without trailing zeros, Z for UTC)."""
    moment = datetime.fromtimestamp(wall, tz=UTC).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    if fraction:
        text += "." + fraction
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    zone = moment.strftime("%z")
    return text + zone[:3] + ":" + zone[3:]


def _parse_rfc3339(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        raise ConfigError(f"fortio JSON: StartTime {text!r} is not RFC 3339") from None


def _restore_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON turns the int code keys of each row into strings; turn them back."""
    out = []
    for row in rows:
        row = dict(row)
        row["codes"] = {int(k): v for k, v in (row.get("codes") or {}).items()}
        out.append(row)
    return out


def _run_id(start: float, label: str) -> str:
    """fortio's result ID (periodic.go ``GenID``, RunID 0): date, then the label's letters and
    digits with every other run of characters turned into one ``_``, at most 96 bytes."""
    base = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(start))
    if not label:
        return base
    out = []
    last = "_"
    for ch in label:
        if ch.isascii() and ch.isalnum():
            last = ch
        elif last == "_":
            continue
        else:
            last = "_"
        out.append(last)
    base += "_" + "".join(out)
    if last == "_":
        base = base[:-1]
    return base[:96]
