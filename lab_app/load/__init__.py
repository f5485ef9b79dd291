"""fortio-compatible load generation for the lab: start it in a notebook, watch it live.

``start_load(url, qps=..., duration=..., c=...)`` returns a :class:`LoadRun` at once (awaitable,
stoppable, with live ``results`` and ``subscribe()``); ``run_load`` does the same for scripts;
``LoadResults`` prints fortio's report and reads/writes fortio's JSON.
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
