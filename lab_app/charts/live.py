"""A per-second chart of load runs that redraws live in JupyterLab and renders statically in CI.

Live mode: a plotly ``FigureWidget`` (needs anywidget) updated about once a second by an
asyncio task on the kernel's loop, inside ``batch_update()``. Batch mode (papermill, nbval, a
script): nothing live; ``chart.figure()`` / ``chart.show()`` in a foreground cell draw the same
figure from the same data at the end (output of background tasks is not saved in batch runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from lab_app.charts.export import save_html, save_png
from lab_app.charts.figures import (
    Marker,
    SeriesData,
    build_figure,
    event_shapes,
    to_marker,
    trace_specs,
)
from lab_app.errors import ConfigError
from lab_app.load.results import LoadResults
from lab_app.load.runner import LoadRun
from lab_app.load.timeline import Timeline

#: The live task gives up after this long even if a run never finishes (same cap as the load).
MAX_LIVE_SECONDS = 3600.0


def in_ipython_kernel() -> bool:
    """True inside a Jupyter kernel (ipykernel), where a widget can be displayed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def default_live(live: bool | None = None) -> bool:
    """Resolve the ``live`` parameter: explicit wins; else ``ZDLAB_LIVE`` ("0"/"1"), default on;
    and off outside a Jupyter kernel."""
    if live is not None:
        return bool(live)
    env = os.environ.get("ZDLAB_LIVE", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env not in ("", "1", "true", "yes", "on"):
        raise ConfigError(f"ZDLAB_LIVE: expected 0 or 1, got {os.environ['ZDLAB_LIVE']!r}")
    return in_ipython_kernel()


class _Series:
    """One run on the chart: its handle or results, and its bins on the chart's clock."""

    def __init__(self, label: str, run: LoadRun | None, results: LoadResults | None) -> None:
        self.label = label
        self.run = run
        self.results = results
        self.timeline: Timeline | None = None
        self.cursor = 0

    @property
    def start(self) -> float:
        if self.run is not None:
            return self.run.wall0
        assert self.results is not None
        return self.results.start_time

    @property
    def done(self) -> bool:
        return self.run is None or self.run.done

    def rows(self, t0: float, bin_s: float) -> list[dict[str, Any]]:
        log = (
            self.run.log
            if self.run is not None
            else (self.results.records if self.results else None)
        )
        if log is not None:
            if self.timeline is None or self.timeline.t0 != t0 or self.timeline.bin_s != bin_s:
                self.timeline = Timeline(t0, bin_s)
                self.cursor = 0
            self.cursor = self.timeline.add_log(log, self.cursor)
            return self.timeline.rows()
        assert self.results is not None
        shift = self.results.start_time - t0  # rows from JSON: whole seconds since their start
        out = []
        for row in self.results.timeline_rows:
            row = dict(row)
            row["t"] = round(math.floor((row["t"] + shift) / bin_s) * bin_s, 6)
            out.append(row)
        return out


class LiveChart:
    """Per-second status codes, versions and latency of one or more runs, with event markers.

    >>> chart = LiveChart()                 # live in JupyterLab, static elsewhere
    >>> chart.add_run(run, "gateway")       # a LoadRun (live) or LoadResults (static)
    >>> chart.add_events(cluster_events)    # Event objects or (t, text) tuples
    >>> chart.start()                       # live: displays the widget, redraws ~1/s
    >>> ...; await run; chart.show()        # a foreground cell: the static figure
    """

    def __init__(
        self,
        *,
        title: str = "Load: responses per second",
        live: bool | None = None,
        bin_s: float = 1.0,
        interval: float = 1.0,
        height: int = 720,
    ) -> None:
        if not (bin_s > 0 and interval > 0):
            raise ConfigError("LiveChart: bin_s and interval must be > 0")
        self.title = title
        self.live = default_live(live)
        self.bin_s = bin_s
        self.interval = interval
        self.height = height
        self._series: list[_Series] = []
        self._markers: list[Marker] = []
        self._marker_set: set[Marker] = set()
        self._t0: float | None = None
        self._widget: go.FigureWidget | None = None
        self._task: asyncio.Task[None] | None = None
        self._followers: list[asyncio.Task[None]] = []
        self._redraws = 0
        if self.live:
            # The first FigureWidget costs ~1.5 s (anywidget's bundle): pay it now, before the
            # load starts, not inside the first redraw where it would stall the run's loop.
            _ = self.widget

    # ------------------------------------------------------------------ inputs
    def add_run(self, run: LoadRun | LoadResults, label: str | None = None) -> LiveChart:
        """Add a load run (``LoadRun`` handle or finished ``LoadResults``) to the chart."""
        if isinstance(run, LoadRun):
            series = _Series(label or run.label or f"run {len(self._series) + 1}", run, None)
        elif isinstance(run, LoadResults):
            series = _Series(label or run.label or f"run {len(self._series) + 1}", None, run)
        else:
            raise ConfigError(
                f"add_run: expected a LoadRun or LoadResults, got {type(run).__name__}"
            )
        self._series.append(series)
        if self._t0 is None:
            self._t0 = series.start
        return self

    def add_events(self, events: Iterable[Any]) -> LiveChart:
        """Add events: objects with ``.t`` (e.g. cluster ``Event``) or ``(t, text)`` tuples.

        An event already on the chart (same time, kind and text) is not added twice, so a
        chart that followed a live stream can be given the full event list at the end.
        """
        for event in events:
            self._add_marker(to_marker(event))
        return self

    def _add_marker(self, marker: Marker) -> None:
        if marker not in self._marker_set:
            self._marker_set.add(marker)
            self._markers.append(marker)

    def add_event(self, event: Any) -> LiveChart:
        return self.add_events([event])

    def follow(self, events: AsyncIterator[Any]) -> asyncio.Task[None]:
        """Consume an async event stream into markers until the chart stops."""

        async def consume() -> None:
            try:
                async for event in events:
                    self._add_marker(to_marker(event))
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()

        task = asyncio.get_running_loop().create_task(consume(), name="zdlab-chart follow")
        self._followers.append(task)
        return task

    @property
    def t0(self) -> float:
        """Wall-clock origin of the time axis: the first run's start (or first event, or now)."""
        if self._t0 is not None:
            return self._t0
        if self._markers:
            return min(m.t for m in self._markers)
        return time.time()

    # ------------------------------------------------------------------ figures
    def _series_data(self) -> list[SeriesData]:
        t0 = self.t0
        return [SeriesData(s.label, s.rows(t0, self.bin_s)) for s in self._series]

    def figure(self) -> go.Figure:
        """A static figure of everything collected so far (the same drawing as the live one)."""
        return build_figure(
            self._series_data(),
            self._markers,
            t0=self.t0,
            bin_s=self.bin_s,
            title=self.title,
            height=self.height,
        )

    @property
    def widget(self) -> go.FigureWidget:
        """The live FigureWidget (created on first use; needs anywidget)."""
        if self._widget is None:
            self._widget = go.FigureWidget(self.figure())
        return self._widget

    def redraw(self) -> None:
        """Bring the widget up to date: assign new x/y to its traces (cheap), or rebuild the
        traces only when the set of series changed (a new status code or version appeared)."""
        widget = self.widget
        specs, marker_xs = trace_specs(
            self._series_data(), self._markers, t0=self.t0, bin_s=self.bin_s
        )
        if [t.name for t in widget.data] != [spec["name"] for _, spec in specs]:
            fresh = self.figure()
            widget.data = ()
            if self._layout_rows(widget) != self._layout_rows(fresh):
                # a run was added since the widget was drawn: it needs its own latency panel
                autosize = widget.layout.autosize
                widget.layout = fresh.layout
                widget.layout.autosize = autosize  # keep the plotly#5208 fix (see start())
            widget.add_traces(list(fresh.data))
            widget.layout.shapes = fresh.layout.shapes
        else:
            with widget.batch_update():
                for trace, (_, spec) in zip(widget.data, specs, strict=True):
                    trace.x = spec["x"]
                    trace.y = spec["y"]
                    if "hovertext" in spec:
                        trace.hovertext = spec["hovertext"]
                if len(widget.layout.shapes) != len(marker_xs):
                    widget.layout.shapes = event_shapes(marker_xs)
        self._redraws += 1

    @staticmethod
    def _layout_rows(fig: go.Figure) -> int:
        """How many subplot rows ``fig``'s layout has (one y axis per row)."""
        return sum(1 for name in fig.layout if name.startswith("yaxis"))

    # ------------------------------------------------------------------ live task
    def start(self, *, display: bool = True) -> None:
        """Live mode: show the widget (in a kernel) and redraw about once a second until every
        run has finished. Batch mode: does nothing (call ``show()`` at the end). Returns None,
        so a cell ending in ``chart.start()`` shows the live widget and nothing else."""
        if not self.live or self._task is not None:
            return
        if display and in_ipython_kernel():
            from IPython.display import display as ipy_display

            ipy_display(self.widget)
            # plotly/plotly.py#5208: under anywidget the widget keeps plotly's default 700 px
            # width unless autosize is switched on after it is displayed.
            self.widget.layout.autosize = True
        else:
            _ = self.widget
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="zdlab-chart live")

    async def _loop(self) -> None:
        deadline = time.monotonic() + MAX_LIVE_SECONDS
        try:
            while time.monotonic() < deadline:
                self.redraw()
                if self._series and all(s.done for s in self._series):
                    break
                await asyncio.sleep(self.interval)
            self.redraw()
        finally:
            for task in self._followers:
                task.cancel()
            if self._followers:
                await asyncio.gather(*self._followers, return_exceptions=True)
            self._followers.clear()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait (bounded by ``timeout``) until the live task has drawn the runs' final state."""
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def stop(self) -> None:
        """Stop the live task and event followers now."""
        for task in [self._task, *self._followers]:
            if task is not None and not task.done():
                task.cancel()

    async def aclose(self) -> None:
        self.stop()
        tasks = [t for t in [self._task, *self._followers] if t is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ output
    def show(self, renderer: str | None = None) -> None:
        """Display the static figure (use from a foreground cell so batch runs keep it)."""
        self.figure().show(renderer=renderer)

    def save_html(
        self, path: str | os.PathLike[str], *, include_plotlyjs: bool | str = True
    ) -> Path:
        return save_html(self.figure(), path, include_plotlyjs=include_plotlyjs)

    def save_png(
        self, path: str | os.PathLike[str], *, width: int = 1200, scale: float = 1.0
    ) -> Path:
        # the figure's own height: each run's latency panel adds to ``self.height``
        return save_png(self.figure(), path, width=width, scale=scale)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        """A chart as a cell's last expression shows its static figure."""
        return self.figure()._repr_mimebundle_(include, exclude)
