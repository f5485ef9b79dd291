"""Charts of load runs and cluster events: a live per-second widget and static figures."""

from lab_app.charts.export import ChromeNotFoundError, find_chrome, save_html, save_png
from lab_app.charts.figures import Marker, build_figure, compare_figure, to_marker
from lab_app.charts.live import LiveChart, default_live, in_ipython_kernel

__all__ = [
    "ChromeNotFoundError",
    "LiveChart",
    "Marker",
    "build_figure",
    "compare_figure",
    "default_live",
    "find_chrome",
    "in_ipython_kernel",
    "save_html",
    "save_png",
    "to_marker",
]
