"""In a real Jupyter kernel: runs started in one cell keep going while later cells run."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

CELLS = [
    """
import asyncio, os, time
from lab_app.load import start_load
from lab_app.charts import LiveChart
URL = os.environ["ZDLAB_TEST_URL"]
""",
    """
chart = LiveChart()          # live: we are in a kernel
assert chart.live
a = start_load(URL, qps=50, c=2, duration=4, label="a")
b = start_load(URL, qps=20, c=2, duration=4, label="b")
chart.add_run(a).add_run(b).add_events([(time.time() + 1, "marker")])
chart.start()
""",
    # The kernel's loop runs the load while this cell awaits something else.
    "await asyncio.sleep(1)",
    """
assert not a.done and not b.done, (a, b)
assert a.requests > 20 and b.requests > 5, (a.requests, b.requests)
assert chart.running
""",
    """
ra, rb = await a, await b
await chart.wait(10)
assert (ra.requests, rb.requests) == (200, 80), (ra.requests, rb.requests)
assert ra.codes == {200: 200} and rb.codes == {200: 80}
assert not chart.running and chart._redraws >= 3
names = [t.name for t in chart.widget.data]
assert "a: 2xx" in names and "b: 2xx" in names and "events" in names, names
pending = [t for t in asyncio.all_tasks() if "zdlab" in t.get_name()]
assert pending == [], pending
print("OK", ra.requests, rb.requests)
""",
]


def test_two_runs_across_cells_in_a_kernel(server, monkeypatch, tmp_path):
    monkeypatch.setenv("ZDLAB_TEST_URL", server.url())
    monkeypatch.delenv("ZDLAB_LIVE", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src.strip()) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        store_widget_state=False,
    )
    client.execute()
    last = nb.cells[-1]["outputs"]
    assert any("OK 200 80" in out.get("text", "") for out in last), last
