"""What every notebook needs besides its lesson: paths, batch/live switches, saved outputs.

The notebooks stay short and readable because the plumbing lives here: where the
manifests are, whether to draw live (JupyterLab) or statically (papermill, nbval), where
executed results go (``out/``), and a cluster that is closed even when a cell fails.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from lab_app.errors import ConfigError
from lab_app.paths import REPO_ROOT

PACKAGE_ROOT = REPO_ROOT  # the checkout holding lab_app/ (lab_app.paths)


def repo_root() -> Path:
    """The checkout holding ``manifests/`` (the package's parent in an editable install)."""
    for candidate in (PACKAGE_ROOT, Path.cwd(), *Path.cwd().parents):
        if (candidate / "manifests").is_dir():
            return candidate
    raise ConfigError(
        "cannot find the lab's manifests/ folder: run from the zdlab checkout "
        "or set ZDLAB_MANIFESTS to its path"
    )


def manifests_dir() -> Path:
    """``ZDLAB_MANIFESTS`` if set, else the checkout's ``manifests/``."""
    env = os.environ.get("ZDLAB_MANIFESTS")
    return Path(env) if env else repo_root() / "manifests"


def live(default: bool) -> bool:
    """The notebook's ``LIVE`` parameter, unless ``ZDLAB_LIVE`` (set by batch runs) overrides it.

    In papermill and nbval a live widget is never seen (what a background task draws after
    its cell ended is not saved), so batch runs set ``ZDLAB_LIVE=0`` and the notebook draws
    one static chart from a foreground cell instead.
    """
    env = os.environ.get("ZDLAB_LIVE")
    if env is None or env == "":
        return bool(default)
    if env.lower() in ("1", "true", "yes", "on"):
        return True
    if env.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"ZDLAB_LIVE={env!r}: use 1 or 0")


def backend(default: str) -> str:
    """The notebook's ``BACKEND`` parameter, unless ``ZDLAB_BACKEND`` overrides it."""
    return os.environ.get("ZDLAB_BACKEND") or default


def out_dir(default: str | os.PathLike[str] = "../out") -> Path:
    """Where executed results go (git-ignored): ``ZDLAB_OUT``, else the notebook's ``OUT_DIR``."""
    path = Path(os.environ.get("ZDLAB_OUT") or default).resolve()
    (path / "figures").mkdir(parents=True, exist_ok=True)
    (path / "results").mkdir(parents=True, exist_ok=True)
    return path


def save_figure(figure: Any, name: str, out: Path) -> list[Path]:
    """Save a chart (``LiveChart`` or plotly figure) as HTML, and as PNG where Chromium exists."""
    from lab_app.charts import find_chrome, save_html, save_png

    fig = figure.figure() if hasattr(figure, "figure") and callable(figure.figure) else figure
    # plotly.js is written once next to the figures, so the pages open offline too
    saved = [save_html(fig, out / "figures" / f"{name}.html", include_plotlyjs="directory")]
    if find_chrome():
        with contextlib.suppress(Exception):  # a PNG is a bonus; the HTML is the record
            saved.append(save_png(fig, out / "figures" / f"{name}.png"))
    return saved


def save_result(name: str, data: dict[str, Any], out: Path) -> Path:
    """Write one experiment's figures for notebook 08 (``out/results/NAME.json``), atomically."""
    path = out / "results" / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every result saved by ``save_result``, sorted by name."""
    return [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "results").glob("*.json"))
    ]


def result_row(scenario: str, results: Any, seconds: float | None = None) -> dict[str, Any]:
    """One comparable row from a ``LoadResults``: requests, non-2xx, error %, p99, time."""
    error_pct = 100.0 * results.non_2xx / results.requests if results.requests else 0.0
    return {
        "scenario": scenario,
        "requests": results.requests,
        "non_2xx": results.non_2xx,
        "error_pct": round(error_pct, 3),
        "p99_ms": round(results.p99_ms, 2),
        "duration_s": round(seconds if seconds is not None else results.actual_duration, 2),
        "codes": {str(k): v for k, v in results.codes.items()},
        "by_version": dict(results.by_version),
    }


async def open_cluster(backend_name: str, notebook: str | None = None, **options: Any) -> Any:
    """``connect()`` for notebooks: the final cell closes it (``await cluster.close()``).

    ``notebook`` ("05"): the cluster works in namespace ``zdlab-05``, created with Istio's
    injection label and the Pod Security labels and deleted when the notebook closes its
    cluster (``keep_namespace=True`` keeps it for inspection). A known state per notebook:
    nothing a notebook leaves behind (a Deployment, a route) can change what the next one
    measures. The cluster returned is checked to be the backend asked for.

    If a cell fails, the kernel is interrupted, restarted or killed instead, the embedded
    backend's processes still stop: each dies with its parent (``PR_SET_PDEATHSIG``) and a
    reaper process kills whatever outlives the kernel (tests/notebooks checks all three).
    An ``atexit`` hook cannot do it gracefully: the cluster's tasks belong to the kernel's
    event loop, which is gone by then.
    """
    from lab_app.cluster import connect

    if notebook is not None:
        options.setdefault("namespace", f"zdlab-{notebook}")
    cluster = await connect(backend_name, **options)
    if cluster.backend != backend_name:  # a helper must never fall back to another backend
        await cluster.close()
        raise ConfigError(f"asked for backend {backend_name!r}, got {cluster.backend!r}")
    return cluster


def environment_report() -> dict[str, str]:
    """What notebook 00 shows: Python, the lab's key libraries, Envoy, Chromium, the backend."""
    report = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("zdlab", "fastapi", "uvicorn", "httpx", "plotly", "papermill", "kubernetes"):
        try:
            report[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            report[dist] = "not installed"
    try:
        from lab_app.cluster.embedded.envoy import find_envoy

        report["envoy"] = str(find_envoy())
    except Exception as exc:  # shown to the learner, with the fix, in notebook 00
        report["envoy"] = f"NOT FOUND: {exc}"
    from lab_app.charts import find_chrome

    report["chromium (PNG export)"] = find_chrome() or "not found (charts still work; no PNG)"
    report["backend"] = backend("embedded")
    return report
