"""fortio-compatible load generation for the lab: start it in a notebook, watch it live.

``start_load(url, qps=..., duration=..., c=...)`` returns a :class:`LoadRun` at once (awaitable,
stoppable, with live ``results`` and ``subscribe()``); ``run_load`` does the same for scripts;
``LoadResults`` prints fortio's report and reads/writes fortio's JSON.

Where it deliberately differs from plain fortio (docs/fidelity.md has the full list): a reused
keep-alive socket that dies before the response is counted (error class ``reset_reused``)
instead of being retried once as fortio's fast client does (``fortio_retry=True`` restores
that, counting ``retried_reused``); requests in flight when a run is stopped are kept as
``cancelled``; there is no warmup request; and error classes, versions and a timeline travel
in the JSON under ``zdlab``.
"""

from lab_app.load.options import (
    DEFAULT_PERCENTILES,
    MAX_DURATION_S,
    LoadOptions,
    make_options,
    parse_duration,
    parse_percentiles,
)
from lab_app.load.records import ERROR_CLASSES, Record, RequestLog
from lab_app.load.results import LoadResults, is_success
from lab_app.load.runner import LagMonitor, LoadRun, RecordBatch, run_load, start_load
from lab_app.load.timeline import Timeline

__all__ = [
    "DEFAULT_PERCENTILES",
    "ERROR_CLASSES",
    "MAX_DURATION_S",
    "LagMonitor",
    "LoadOptions",
    "LoadResults",
    "LoadRun",
    "Record",
    "RecordBatch",
    "RequestLog",
    "Timeline",
    "is_success",
    "make_options",
    "parse_duration",
    "parse_percentiles",
    "run_load",
    "start_load",
]
