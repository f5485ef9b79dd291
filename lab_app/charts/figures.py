"""Static plotly figures of load runs: per-second status codes, versions, latency, event markers.

Pure functions of already-binned data, so the live widget and the static figure a notebook
shows at the end are drawn by the same code and cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab_app.load.records import ERROR_CLASSES

OK_COLOR = "#2ca02c"
ERROR_COLORS = {
    "refused": "#404040",
    "reset": "#000000",
    "reset_reused": "#5b0f0f",  # a reused keep-alive socket died before the answer
    "timeout": "#8c564b",
    "cancelled": "#c7c7c7",  # cut when the run was stopped: the lab's, not the server's
    "other": "#7f7f7f",
}
_STATUS_COLORS = ["#d62728", "#ff7f0e", "#e377c2", "#9467bd", "#bcbd22", "#17becf"]
_VERSION_COLORS = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"]
_NO_EXTRA = "<extra></extra>"
#: Pixels each latency panel after the first adds to a chart's height.
EXTRA_LATENCY_PX = 170


@dataclass(frozen=True)
class Marker:
    """An event drawn as a vertical line: wall-clock ``t``, short ``label``, longer ``detail``."""

    t: float
    label: str
    detail: str = ""


def to_marker(event: Any) -> Marker:
    """Accept a ``lab_app.cluster.events.Event`` (or anything with ``.t``), or a ``(t, text)``."""
    if isinstance(event, Marker):
        return event
    if isinstance(event, tuple | list) and len(event) >= 2:
        return Marker(float(event[0]), str(event[1]), str(event[2]) if len(event) > 2 else "")
    t = getattr(event, "t", None)
    if t is None:
        raise TypeError(f"an event needs a wall-clock .t or to be a (t, text) tuple: {event!r}")
    kind = str(getattr(event, "kind", "") or "event")
    obj = str(getattr(event, "obj", "") or "")
    message = str(getattr(event, "message", "") or "")
    return Marker(float(t), kind, " ".join(p for p in (obj, message) if p))


def _event_text(m: Marker) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(m.t))} {m.label} {m.detail}".strip()


def status_category(code: int | str) -> str:
    """'2xx' for any success, the code itself otherwise (errors are split by class elsewhere)."""
    code = int(code)
    return "2xx" if 200 <= code < 300 else str(code)


@dataclass
class SeriesData:
    """One run's binned rows (``Timeline.rows()`` shape) with ``t`` relative to the chart's t0."""

    label: str
    rows: list[dict[str, Any]]


def _category_order(series: Sequence[SeriesData]) -> list[str]:
    statuses: set[str] = set()
    errors: set[str] = set()
    for s in series:
        for row in s.rows:
            for code in row["codes"]:
                if int(code) != -1:
                    statuses.add(status_category(code))
            errors.update(k for k, v in row["errors"].items() if v)
    ordered = ["2xx"] if "2xx" in statuses else []
    ordered += sorted(statuses - {"2xx"}, key=int)
    ordered += [e for e in ERROR_CLASSES if e in errors]
    return ordered


def _category_counts(row: Mapping[str, Any], category: str) -> int:
    if category in ERROR_CLASSES:
        return int(row["errors"].get(category, 0))
    return sum(int(n) for code, n in row["codes"].items() if status_category(code) == category)


def _color(category: str, index: int) -> str:
    if category == "2xx":
        return OK_COLOR
    if category in ERROR_COLORS:
        return ERROR_COLORS[category]
    return _STATUS_COLORS[index % len(_STATUS_COLORS)]


def trace_specs(
    series: Sequence[SeriesData],
    markers: Iterable[Marker] = (),
    *,
    t0: float | None = None,
    bin_s: float = 1.0,
) -> tuple[list[tuple[int, dict[str, Any]]], list[float]]:
    """The chart's traces as plain dicts ``(row, plotly kwargs)`` plus the event x positions.

    Plain dicts are cheap to build, so the live widget can recompute them every second and only
    assign ``x``/``y`` to its existing traces (building plotly objects costs tens of ms, which
    would show up as event-loop lag in the load run being charted).
    """
    specs: list[tuple[int, dict[str, Any]]] = []
    multi = len(series) > 1
    categories = _category_order(series)
    non_ok = [c for c in categories if c != "2xx" and c not in ERROR_CLASSES]
    versions = sorted({v for s in series for row in s.rows for v in row["versions"]})
    width = 0.9 * bin_s
    peak = 1
    for run_index, s in enumerate(series):
        xs = [row["t"] + bin_s / 2 for row in s.rows]
        prefix = f"{s.label}: " if multi else ""
        opacity = 1.0 if run_index == 0 else max(0.45, 1.0 - 0.25 * run_index)
        peak = max([peak, *(row["requests"] for row in s.rows)])
        for category in categories:
            ys = [_category_counts(row, category) for row in s.rows]
            if not any(ys):
                continue
            color = _color(category, non_ok.index(category) if category in non_ok else 0)
            specs.append(
                (
                    1,
                    {
                        "type": "bar",
                        "x": xs,
                        "y": ys,
                        "width": width,
                        "name": f"{prefix}{category}",
                        "legendgroup": "status",
                        "marker": {"color": color},
                        "opacity": opacity,
                        "hovertemplate": f"{prefix}{category}: %{{y}} at %{{x:.0f}} s" + _NO_EXTRA,
                    },
                )
            )
        for v_index, version in enumerate(versions):
            ys = [int(row["versions"].get(version, 0)) for row in s.rows]
            if not any(ys):
                continue
            specs.append(
                (
                    2,
                    {
                        "type": "bar",
                        "x": xs,
                        "y": ys,
                        "width": width,
                        "name": f"{prefix}version {version}",
                        "legendgroup": "version",
                        "marker": {"color": _VERSION_COLORS[v_index % len(_VERSION_COLORS)]},
                        "opacity": opacity,
                        "hovertemplate": f"{prefix}{version}: %{{y}} at %{{x:.0f}} s" + _NO_EXTRA,
                    },
                )
            )
        # one latency panel per run, each with its own y axis (see build_figure)
        latency_row = 3 + run_index
        for name, key, color in (("p50", "p50_ms", "#1f77b4"), ("p99", "p99_ms", "#d62728")):
            specs.append(
                (
                    latency_row,
                    {
                        "type": "scatter",
                        "x": xs,
                        "y": [row.get(key) for row in s.rows],
                        "mode": "lines+markers",
                        "marker": {"size": 4},
                        "line": {"color": color, "width": 1.5},
                        "name": f"{prefix}{name} latency",
                        "legendgroup": "latency",
                        "connectgaps": False,
                        "hovertemplate": f"{prefix}{name}: %{{y:.2f}} ms<extra></extra>",
                    },
                )
            )
    marks = sorted(markers, key=lambda m: m.t)
    mx: list[float] = []
    if marks:
        base = t0 if t0 is not None else marks[0].t
        mx = [m.t - base for m in marks]
        specs.append(
            (
                1,
                {
                    "type": "scatter",
                    "x": mx,
                    "y": [peak * 1.08] * len(marks),
                    "mode": "markers",
                    "marker": {"symbol": "triangle-down", "size": 9, "color": "#444"},
                    "name": "events",
                    "text": [m.label for m in marks],
                    "hovertext": [_event_text(m) for m in marks],
                    "hoverinfo": "text",
                },
            )
        )
    return specs, mx


def event_shapes(xs: Sequence[float]) -> list[dict[str, Any]]:
    """Vertical dotted lines across all the rows, one per event."""
    return [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": x,
            "x1": x,
            "y0": 0,
            "y1": 1,
            "line": {"color": "rgba(80,80,80,0.55)", "dash": "dot", "width": 1},
        }
        for x in xs
    ]


def latency_rows(n_series: int) -> int:
    """How many latency panels a chart of ``n_series`` runs has: one per run (at least one).

    Runs of different endpoints can differ a thousandfold in latency (``/k8s/demo`` answers in
    milliseconds, ``/k8s/longTask`` in seconds); on one shared axis the fast one is a flat line
    at zero. A panel per run gives each its own scale and keeps the axis linear, so "p99 went
    from 3 to 40 ms" reads as directly as it does on a one-run chart.
    """
    return max(1, n_series)


def build_figure(
    series: Sequence[SeriesData],
    markers: Iterable[Marker] = (),
    *,
    t0: float | None = None,
    bin_s: float = 1.0,
    title: str = "Load: responses per second",
    height: int = 720,
) -> go.Figure:
    """Rows sharing the time axis (seconds since ``t0``): status codes (stacked bars,
    connection errors by class), responding versions (stacked bars), then latency p50/p99
    (lines), one panel per run so each run's latency has its own y axis; events as vertical
    dotted lines plus an ``events`` marker trace carrying their text.

    ``height`` is the height of a one-run chart; each further run's latency panel adds
    ``EXTRA_LATENCY_PX``, so the status and version rows keep their size.
    """
    specs, marker_xs = trace_specs(series, markers, t0=t0, bin_s=bin_s)
    n_latency = latency_rows(len(series))
    total_height = height + EXTRA_LATENCY_PX * (n_latency - 1)
    if n_latency == 1:
        latency_titles: tuple[str, ...] = ("Latency",)
    else:
        latency_titles = tuple(f"Latency: {s.label}" for s in series)
    fig = make_subplots(
        rows=2 + n_latency,
        cols=1,
        shared_xaxes=True,
        # the same gap in pixels as a one-run chart's 6 %
        vertical_spacing=0.06 * height / total_height,
        # relative heights (make_subplots normalises them): an extra panel is a bit shorter
        row_heights=[0.45, 0.3, 0.25] if n_latency == 1 else [0.45, 0.3] + [0.22] * n_latency,
        subplot_titles=("Responses per second by status", "By responding version", *latency_titles),
    )
    for row, spec in specs:
        fig.add_trace(spec, row=row, col=1)
    fig.update_layout(
        title=title,
        barmode="stack",
        bargap=0.05,
        height=total_height,
        hovermode="x",
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        uirevision="zdlab",
        shapes=event_shapes(marker_xs),
    )
    fig.update_yaxes(title_text="req/s", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="req/s", row=2, col=1, rangemode="tozero")
    for row in range(3, 3 + n_latency):
        # 12,000 ms rather than 12k: the unit is in the title, an SI suffix would confuse it
        fig.update_yaxes(
            title_text="ms",
            row=row,
            col=1,
            rangemode="tozero",
            exponentformat="none",
            separatethousands=True,
        )
    fig.update_xaxes(title_text="seconds since start", row=2 + n_latency, col=1)
    return fig


def compare_figure(
    rows: Sequence[Mapping[str, Any]], *, title: str = "Strategies compared"
) -> go.Figure:
    """Bar charts of error % and p99 latency per scenario.

    ``rows``: dicts with ``scenario``, ``requests``, ``non_2xx``, ``p99_ms`` and optionally
    ``duration_s`` (shown in the hover text).
    """
    required = ("scenario", "requests", "non_2xx", "p99_ms")
    names: list[str] = []
    error_pct: list[float] = []
    p99: list[float] = []
    hover: list[str] = []
    for i, row in enumerate(rows):
        missing = [k for k in required if k not in row]
        if missing:
            from lab_app.errors import ConfigError

            raise ConfigError(f"compare_figure: row {i} lacks {', '.join(missing)}")
        requests = int(row["requests"])
        non_2xx = int(row["non_2xx"])
        names.append(str(row["scenario"]))
        error_pct.append(100.0 * non_2xx / requests if requests else 0.0)
        p99.append(float(row["p99_ms"]))
        duration = row.get("duration_s")
        extra = f", {float(duration):.0f} s" if duration is not None else ""
        hover.append(f"{non_2xx} of {requests} requests failed{extra}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Failed requests (%)", "p99 latency (ms)"))
    fig.add_trace(
        go.Bar(
            x=names,
            y=error_pct,
            name="error %",
            marker_color=["#d62728" if v > 0 else OK_COLOR for v in error_pct],
            text=[f"{v:.2f} %" for v in error_pct],
            textposition="outside",
            hovertext=hover,
            hoverinfo="text+x",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=p99,
            name="p99 ms",
            marker_color="#1f77b4",
            text=[f"{v:.1f}" for v in p99],
            textposition="outside",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(title=title, showlegend=False, height=420, margin={"t": 80})
    fig.update_yaxes(rangemode="tozero")
    return fig
