"""Screenshot a notebook running in real JupyterLab with its live chart mid-run (for the docs).

Why a script: the live chart is a plotly ``FigureWidget`` redrawn by an asyncio task in the
kernel, and only a browser running JupyterLab shows it (papermill/nbval store no picture of
a widget). So this starts ``jupyter lab`` on 127.0.0.1 (free port, generated token, temporary
config/runtime/settings dirs, autosave off so the stored notebook is never written), opens the
notebook in headless Chromium driven by Playwright, runs all cells, waits until a pattern
appears in the outputs (by default: the 50/50 step of notebook 05 held), scrolls the live
chart into view and saves a PNG. It then lets the notebook finish (its last cell closes the
cluster), shuts the kernel and the server down, and checks that no process it started
(server, kernel, the lab's pods and Envoys, Chromium) is left.

Needs: the venv's jupyterlab/anywidget/plotly, ``playwright`` (the Python package only; the
browser is Debian's ``/usr/bin/chromium``, no ``playwright install``), Pillow only if the PNG
must be shrunk.

Usage: python scripts/screenshot_jupyterlab.py [--notebook 05_istio_subset_cutover.ipynb]
       [--root-dir notebooks] [--out docs/img/05-live-cutover.png] [--pattern REGEX]
       [--deadline 300] [--static-from out/figures/05_istio_subset_cutover.png]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # Playwright adds --headless itself (headless=True)

#: JupyterLab user settings for a quiet, deterministic session: no autosave (the stored
#: notebook must stay output-free), no news/update requests (no network), every cell attached
#: to the DOM (a windowed notebook may detach the widget's output while it is scrolled away).
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

# --------------------------------------------------------------------- JS run in the page
JS_NOTEBOOK_READY = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  return !!(w && w.content && w.context && w.context.isReady && ctx && ctx.session
            && ctx.session.kernel && ctx.session.kernel.status === 'idle');
}"""

JS_KERNEL_STATUS = (
    "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
)

JS_PROGRESS = """(pattern) => {
  const re = new RegExp(pattern);
  const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const texts = outs.map(o => o.innerText || '');
  const errors = [...document.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')]
      .map(e => (e.innerText || '').slice(-1500));
  return {matched: texts.some(t => re.test(t)), errors: errors};
}"""

JS_CHART = """() => {
  const plots = [...document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot')];
  const p = plots[0];
  if (!p) return {plots: 0};
  const legend = [...p.querySelectorAll('.legendtext')].map(e => e.textContent);
  return {plots: plots.length,
          bars: p.querySelectorAll('.barlayer .point path').length,
          legend: legend,
          width: p.getBoundingClientRect().width,
          height: p.getBoundingClientRect().height};
}"""

JS_SCROLL_TO_CHART = """() => {
  const p = document.querySelector('.jp-OutputArea-output .js-plotly-plot');
  if (!p) return false;
  const output = p.closest('.jp-OutputArea-child') || p;
  output.scrollIntoView({block: 'start'});
  // keep the last line of the cell that started the chart in view, for context
  const scroller = output.closest('.jp-WindowedPanel-outer');
  if (scroller) scroller.scrollTop -= 30;
  return true;
}"""

JS_RUN_DONE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const status = w.sessionContext.session.kernel.status;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const done = cells.every(c => c.model.executionCount !== null
                                && !c.node.querySelector('.jp-InputPrompt')
                                      ?.innerText.includes('*'));
  const failed = !!document.querySelector(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]');
  return status === 'idle' && (done || failed);
}"""


class ScreenshotError(RuntimeError):
    """The screenshot could not be taken as asked (server, browser or notebook failure)."""


@dataclass
class ProcessLog:
    """Every process started on our behalf, sampled while it runs: pids alone can be reused,
    so each is remembered with its start time and checked as that exact process."""

    seen: dict[tuple[int, float], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self, roots: list[int], *, include_roots: bool = True) -> None:
        for root in roots:
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(root)
                family = top.children(recursive=True)
                for proc in [top, *family] if include_roots else family:
                    with contextlib.suppress(psutil.Error):
                        key = (proc.pid, proc.create_time())
                        if key not in self.seen:
                            name = " ".join(proc.cmdline()[:4])[:120] or proc.name()
                            with self.lock:
                                self.seen[key] = name

    def alive(self) -> list[str]:
        out = []
        with self.lock:
            items = list(self.seen.items())
        for (pid, created), name in items:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {name}")
        return out


@contextlib.contextmanager
def sampling(log: ProcessLog, roots: list[int], interval: float = 0.5) -> Iterator[None]:
    """Sample ``roots`` and their descendants in the background (processes that re-parent to
    init once their parent dies are caught while their parent still lives)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            log.sample(roots)
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="process-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        log.sample(roots)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ScreenshotError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1 with everything it writes kept in a temporary folder."""

    def __init__(self, root_dir: Path, work: Path, env_extra: dict[str, str]) -> None:
        self.root_dir = root_dir
        self.work = work
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.env_extra = env_extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work / "jupyterlab.log"

    def _write_settings(self) -> Path:
        settings = self.work / "user-settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")
        return settings

    def start(self, timeout: float = 90.0) -> None:
        python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
        env = dict(os.environ)
        for name in ("config", "runtime", "data", "ipython"):
            (self.work / name).mkdir(parents=True, exist_ok=True)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.work / "config"),
            JUPYTER_RUNTIME_DIR=str(self.work / "runtime"),
            JUPYTER_DATA_DIR=str(self.work / "data"),
            IPYTHONDIR=str(self.work / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env_extra)
        argv = [
            str(python),
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={self._write_settings()}",
            f"--LabApp.workspaces_dir={self.work / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")  # containers and CI often run as root
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it; closed below
        try:
            self.proc = subprocess.Popen(
                argv, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ScreenshotError(
                    f"jupyter lab exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                return self.api("GET", "/api/status").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, "jupyter lab answering on /api/status")

    def api(self, method: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10)

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        """Shut every kernel down, then the server; escalate to signals only if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(httpx.HTTPError):
            for kernel in self.api("GET", "/api/kernels").json():
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        with contextlib.suppress(httpx.HTTPError):
            self.api("POST", "/api/shutdown")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print("   jupyter lab did not exit after /api/shutdown: SIGTERM", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def shrink_png(path: Path, max_bytes: int) -> None:
    """Quantize to a 256-colour palette if the PNG is too big for the docs (JupyterLab's flat
    UI loses nothing visible)."""
    if path.stat().st_size <= max_bytes:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"   {path.name} is {path.stat().st_size // 1024} KB; install Pillow to shrink it")
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def take_screenshot(
    server: JupyterLabServer,
    notebook: str,
    out: Path,
    pattern: str,
    deadline: float,
    viewport: tuple[int, int],
    work: Path,
    procs: ProcessLog,
) -> dict[str, Any]:
    """Drive JupyterLab in Chromium: open, run all, wait for ``pattern``, scroll, shoot."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    report: dict[str, Any] = {}
    started = time.monotonic()

    def left() -> float:
        return max(1.0, deadline - (time.monotonic() - started)) * 1000

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(work / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            procs.sample([os.getpid()], include_roots=False)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(server.url(notebook), wait_until="domcontentloaded", timeout=left())
            page.wait_for_function(JS_NOTEBOOK_READY, timeout=left(), polling=200)
            page.evaluate(
                "() => { jupyterapp.shell.collapseLeft(); jupyterapp.shell.collapseRight(); }"
            )
            print("   notebook open, kernel idle: running all cells", flush=True)
            t_run = time.monotonic()
            page.evaluate("() => { void jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(
                f"() => ({JS_KERNEL_STATUS})() !== 'idle'", timeout=left(), polling=100
            )
            try:
                page.wait_for_function(
                    f"(p) => {{ const r = ({JS_PROGRESS})(p); return r.matched || r.errors[0]; }}",
                    arg=pattern,
                    timeout=left(),
                    polling=200,
                )
            except PlaywrightError:  # still take the shot: it shows how far the run got
                report["pattern_timeout"] = True
            progress = page.evaluate(JS_PROGRESS, pattern)
            report["seconds_to_pattern"] = round(time.monotonic() - t_run, 1)
            report["errors"] = progress["errors"]
            procs.sample([server.proc.pid if server.proc else 0])
            report["chart"] = page.evaluate(JS_CHART)
            page.evaluate(JS_SCROLL_TO_CHART)
            # two frames so layout and plotly's last redraw are painted before the shot
            page.evaluate(
                "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=False)
            print(f"   screenshot taken {report['seconds_to_pattern']} s after Run All", flush=True)
            # let the notebook finish: its last cell closes the cluster cleanly
            try:
                page.wait_for_function(JS_RUN_DONE, timeout=max(left(), 120_000), polling=500)
                report["run_finished"] = True
            except PlaywrightError:
                report["run_finished"] = False
            report["errors"] = page.evaluate(JS_PROGRESS, pattern)["errors"]
            report["run_seconds"] = round(time.monotonic() - t_run, 1)
        finally:
            procs.sample([os.getpid()], include_roots=False)
            ctx.close()
    report["console"] = [m for m in console if not m.startswith(("debug:", "log:", "info:"))]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="05_istio_subset_cutover.ipynb")
    parser.add_argument("--root-dir", default=str(NOTEBOOKS), help="JupyterLab's root folder")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "05-live-cutover.png"))
    parser.add_argument(
        "--pattern",
        default=r"weights \{[^}]*50[^}]*\} held",
        help="regex to wait for in the cell outputs before the shot (default: 50/50 step held)",
    )
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds for the shot")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--max-kb", type=int, default=400, help="shrink the PNG above this")
    parser.add_argument(
        "--static-from",
        default=None,
        help="also copy this batch-run PNG (e.g. out/figures/05_istio_subset_cutover.png)",
    )
    parser.add_argument(
        "--static-out", default=str(ROOT / "docs" / "img" / "05-cutover-static.png")
    )
    args = parser.parse_args(argv)

    try:
        re.compile(args.pattern)
    except re.error as exc:
        raise SystemExit(f"--pattern {args.pattern!r} is not a regular expression: {exc}") from None
    root_dir = Path(args.root_dir).resolve()
    notebook_path = root_dir / args.notebook
    if not notebook_path.is_file():
        raise SystemExit(f"no notebook {notebook_path}")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    out = Path(args.out).resolve()
    original = notebook_path.read_bytes()
    checkpoints = root_dir / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()
    procs = ProcessLog()
    work = Path(tempfile.mkdtemp(prefix="zdlab-jlab-shot-"))
    server = JupyterLabServer(
        root_dir,
        work,
        {"ZDLAB_LIVE": "1", "ZDLAB_OUT": str(work / "out"), "PLOTLY_RENDERER": ""},
    )
    report: dict[str, Any] = {}
    status = 0
    try:
        server.start()
        print(f"-> jupyter lab on {server.base} (pid {server.proc.pid if server.proc else '?'})")
        assert server.proc is not None
        with sampling(procs, [server.proc.pid]):
            try:
                report = take_screenshot(
                    server, args.notebook, out, args.pattern, args.deadline,
                    (args.width, args.height), work, procs,
                )  # fmt: skip
            finally:
                server.stop()
    except ScreenshotError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        server.stop()
        if notebook_path.read_bytes() != original:
            notebook_path.write_bytes(original)
            print(f"   WARNING: {notebook_path.name} was written by JupyterLab; restored")
        if not had_checkpoints and checkpoints.exists():
            shutil.rmtree(checkpoints, ignore_errors=True)
        try:
            wait_for(lambda: not procs.alive(), 20, "every started process gone", 0.2)
            print(f"   {len(procs.seen)} processes were started; none is left")
        except ScreenshotError:
            print(f"LEFT RUNNING: {procs.alive()}", file=sys.stderr)
            status = 1
        shutil.rmtree(work, ignore_errors=True)

    if out.exists() and report:
        shrink_png(out, args.max_kb * 1024)
        print(f"   saved {out} ({out.stat().st_size // 1024} KB)")
    chart = report.get("chart", {})
    print(f"   chart: {json.dumps(chart)}")
    if not chart.get("plots") or not chart.get("bars"):
        print("FAILED: no live chart with bars in the page", file=sys.stderr)
        status = 1
    if report.get("pattern_timeout"):
        print(f"FAILED: {args.pattern!r} did not appear within the deadline", file=sys.stderr)
        status = 1
    for err in report.get("errors", []):
        print(f"NOTEBOOK ERROR:\n{err}", file=sys.stderr)
        status = 1
    if report and not report.get("run_finished"):
        print("WARNING: the notebook did not finish before the deadline", file=sys.stderr)
    for line in report.get("console", [])[:40]:
        print(f"   console {line}")
    if args.static_from:
        src = Path(args.static_from)
        if src.is_file():
            static = Path(args.static_out)
            static.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, static)
            shrink_png(static, args.max_kb * 1024)
            print(f"   copied {src} -> {static}")
        else:
            print(f"   no {src}: run scripts/run_notebooks.py --only 05 first", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
