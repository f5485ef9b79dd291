"""Charts of real load runs: traces per code class and version, event markers, exports, live."""

from __future__ import annotations

import asyncio
import time

import plotly.graph_objects as go
import pytest

from lab_app.charts import ChromeNotFoundError, LiveChart, compare_figure, find_chrome
from lab_app.charts.live import default_live
from lab_app.cluster.events import Event, EventKind
from lab_app.errors import ConfigError
from lab_app.load import LoadResults, start_load


@pytest.fixture(scope="module")
def mixed_runs(chart_server):
    """One run answered 200/503 by a live server, one refused by a closed port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]

    async def both():
        ok = start_load(chart_server.url("/mix"), qps=40, c=2, duration=2, label="gateway")
        refused = start_load(f"http://127.0.0.1:{dead}/", qps=10, c=1, duration=2, label="dead")
        return await ok, await refused

    return asyncio.run(both())


def events_for(results: LoadResults) -> list:
    t = results.start_time
    return [
        Event(EventKind.SIGTERM, "pod/demo-1", "stop", t=t + 0.5),
        Event(EventKind.ENDPOINT_REMOVED, "pod/demo-1", t=t + 1.2),
        (t + 1.5, "note by hand"),
    ]


def test_figure_has_code_error_version_latency_and_event_traces(mixed_runs):
    ok, refused = mixed_runs
    chart = LiveChart(live=False)
    chart.add_run(ok).add_run(refused).add_events(events_for(ok))
    chart.add_events(events_for(ok))  # the same events again (e.g. followed, then listed)
    fig = chart.figure()
    names = [t.name for t in fig.data]
    for expected in ("gateway: 2xx", "gateway: 503", "dead: refused", "gateway: version v1",
                     "gateway: p50 latency", "gateway: p99 latency", "events"):  # fmt: skip
        assert expected in names, names
    by_name = {t.name: t for t in fig.data}
    assert sum(by_name["gateway: 2xx"].y) == 40 and sum(by_name["gateway: 503"].y) == 40
    assert sum(by_name["dead: refused"].y) == 20
    assert by_name["gateway: 503"].marker.color != by_name["gateway: 2xx"].marker.color
    events = by_name["events"]
    assert list(events.x) == pytest.approx([0.5, 1.2, 1.5], abs=0.01)
    assert any("SIGTERM" in h and "pod/demo-1" in h for h in events.hovertext)
    assert len(fig.layout.shapes) == 3  # a vertical line per event
    assert fig.layout.barmode == "stack"


def test_chart_from_json_results_without_records(mixed_runs, tmp_path):
    ok, _ = mixed_runs
    path = ok.save_json(tmp_path / "ok.json")
    loaded = LoadResults.from_fortio_json(path)
    assert loaded.records is None
    fig = LiveChart(live=False).add_run(loaded, "from json").figure()
    by_name = {t.name: t for t in fig.data}
    assert sum(by_name["503"].y) == 40 and sum(by_name["2xx"].y) == 40


def test_save_html_and_png(mixed_runs, tmp_path):
    ok, _ = mixed_runs
    chart = LiveChart(live=False).add_run(ok).add_events(events_for(ok))
    html = chart.save_html(tmp_path / "chart.html")
    text = html.read_text()
    assert html.stat().st_size > 100_000 and "plotly" in text and '"name":"503"' in text
    assert not list(tmp_path.glob(".*tmp*"))
    if find_chrome() is None:
        with pytest.raises(ChromeNotFoundError, match="Chrome or Chromium"):
            chart.save_png(tmp_path / "chart.png")
    else:
        png = chart.save_png(tmp_path / "chart.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nested = chart.save_html(tmp_path / "out" / "figures" / "chart.html")
    assert nested.is_file()
    with pytest.raises(ConfigError, match="is a directory"):
        chart.save_html(tmp_path / "out")


def test_png_without_a_browser_is_a_clear_error(mixed_runs, tmp_path, monkeypatch):
    import lab_app.charts.export as export

    monkeypatch.setattr(export, "find_chrome", lambda: None)
    with pytest.raises(ChromeNotFoundError, match="save_html"):
        LiveChart(live=False).add_run(mixed_runs[0]).save_png(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_live_mode_without_a_frontend(chart_server):
    async def main():
        chart = LiveChart(live=True, interval=0.2)
        assert isinstance(chart.widget, go.FigureWidget)
        run = start_load(chart_server.url(), qps=50, c=2, duration=1.2, label="live")
        chart.add_run(run)

        async def cluster_events():
            yield Event(EventKind.POD_READY, "pod/x", t=time.time())
            await asyncio.sleep(0.3)
            yield (time.time(), "later")
            await asyncio.sleep(3600)  # a stream that never ends: the chart must cancel it

        chart.follow(cluster_events())
        chart.start()
        assert chart.running
        await run
        await chart.wait(5)
        assert not chart.running
        assert chart._redraws >= 4
        names = [t.name for t in chart.widget.data]
        assert names[:2] == ["2xx", "version v1"] and "events" in names
        assert sum(chart.widget.data[0].y) == 60
        others = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        assert others == set()
        return chart

    chart = asyncio.run(main())
    # the static figure at the end is the same drawing
    assert [t.name for t in chart.figure().data] == [t.name for t in chart.widget.data]


def test_live_default_follows_env_and_kernel(monkeypatch):
    monkeypatch.setenv("ZDLAB_LIVE", "1")
    assert default_live() is False  # not in a Jupyter kernel: batch mode
    assert LiveChart().live is False
    monkeypatch.setenv("ZDLAB_LIVE", "0")
    assert default_live() is False
    assert default_live(True) is True
    monkeypatch.setenv("ZDLAB_LIVE", "maybe")
    with pytest.raises(ConfigError, match="ZDLAB_LIVE"):
        default_live()


def test_batch_mode_start_is_a_no_op():
    chart = LiveChart(live=False)
    chart.start()
    assert not chart.running and chart._widget is None


def test_compare_figure():
    rows = [
        {"scenario": "naive", "requests": 3000, "non_2xx": 96, "p99_ms": 41.0, "duration_s": 15},
        {"scenario": "hardened", "requests": 3000, "non_2xx": 0, "p99_ms": 3.2},
    ]
    fig = compare_figure(rows)
    errors, p99 = fig.data
    assert list(errors.x) == ["naive", "hardened"]
    assert list(errors.y) == pytest.approx([3.2, 0.0])
    assert list(p99.y) == [41.0, 3.2]
    with pytest.raises(ConfigError, match="row 0 lacks p99_ms"):
        compare_figure([{"scenario": "x", "requests": 1, "non_2xx": 0}])


def test_add_run_rejects_other_things():
    with pytest.raises(ConfigError, match="LoadRun or LoadResults"):
        LiveChart(live=False).add_run("http://x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\.t"):
        LiveChart(live=False).add_events([object()])


def test_each_run_gets_its_own_latency_axis(mixed_runs):
    """A fast and a slow endpoint on one chart: each run's latency on its own y axis, so the
    fast one is not a flat line under the slow one's scale; one run keeps a single panel."""
    ok, refused = mixed_runs
    one = LiveChart(live=False).add_run(ok).figure()
    latency = [t for t in one.data if t.name.endswith("latency")]
    assert {t.yaxis for t in latency} == {"y3"}
    assert one.layout.height == 720 and "yaxis4" not in one.layout

    chart = LiveChart(live=False).add_run(ok).add_run(refused)
    fig = chart.figure()
    axis = {t.name: t.yaxis for t in fig.data}
    assert axis["gateway: p50 latency"] == axis["gateway: p99 latency"] == "y3"
    assert axis["dead: p50 latency"] == axis["dead: p99 latency"] == "y4"
    assert fig.layout.yaxis3.matches is None and fig.layout.yaxis4.matches is None
    assert fig.layout.xaxis4.title.text == "seconds since start"
    titles = [a.text for a in fig.layout.annotations]
    assert "Latency: gateway" in titles and "Latency: dead" in titles
    assert fig.layout.height > 720  # the extra panel adds height, the other rows keep theirs

    # live: the widget drawn before the runs were added gains the second panel on redraw
    live = LiveChart(live=True)
    assert "yaxis4" not in live.widget.layout
    live.widget.layout.autosize = True
    live.add_run(ok).add_run(refused).redraw()
    assert {t.name: t.yaxis for t in live.widget.data} == axis
    assert live.widget.layout.yaxis4.title.text == "ms"
    assert live.widget.layout.height == fig.layout.height and live.widget.layout.autosize
