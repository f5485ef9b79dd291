"""Run the lab's notebooks headless, in order, and write a report: what `make lab` does.

Each ``notebooks/NN_slug.ipynb`` is executed with papermill (``store_widget_state=False``:
live FigureWidgets are useless in a stored notebook and cost megabytes) into ``out/``,
with the live chart off (``ZDLAB_LIVE=0``) so every chart is drawn by a foreground cell.
``out/index.html`` lists each notebook's verdict, its run time and the figures it saved
under ``out/figures/``. A failed notebook is kept (papermill writes it with the error
banner) and the run goes on, so one report shows every failure; the exit status is 1
if any notebook failed.

Usage: python scripts/run_notebooks.py [--out out] [-p NAME VALUE ...] [--only 03 05]
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class Outcome:
    notebook: Path
    output: Path
    seconds: float
    ok: bool
    error: str = ""
    figures: list[Path] = field(default_factory=list)


def parse_value(text: str) -> object:
    """Papermill's CLI passes strings; accept Python literals (50, 0.5, True, "x") too."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def kernel_config() -> object:
    """Start each kernel over IPC (Unix sockets in Jupyter's runtime dir), not TCP.

    Over TCP, ipykernel 7 logs "Kernel is running over TCP without encryption" to its stderr,
    which papermill's kernel shares with this script: once per notebook. An IPC kernel opens no
    port at all, so that warning's cause, not just its text, is gone. nbclient hands this
    config to the KernelManager it creates for every notebook.
    """
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc"}})


def run_one(path: Path, out_dir: Path, params: dict[str, object], timeout: float) -> Outcome:
    import papermill

    declared = notebook_parameters(path)
    unknown = sorted(set(params) - declared)
    if unknown:
        print(f"   ({path.name} has no parameter {', '.join(unknown)}: not passed)")
    given = {k: v for k, v in params.items() if k in declared}
    if "OUT_DIR" in declared:
        given.setdefault("OUT_DIR", str(out_dir))
    output = out_dir / path.name
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=given,
            kernel_name="python3",
            cwd=str(path.parent),
            log_output=False,
            progress_bar=False,
            execution_timeout=timeout,
            store_widget_state=False,
            config=kernel_config(),
        )
        ok, error = True, ""
    except papermill.PapermillExecutionError as exc:
        ok, error = False, f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # a kernel that died is a failed notebook, not a crashed runner
        ok, error = False, f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    prefix = path.name[:3]  # "05_": a notebook's figures are named after its number
    figures = sorted((out_dir / "figures").glob(f"{prefix}*.*"))
    return Outcome(path, output, seconds, ok, error, figures)


def write_index(out_dir: Path, outcomes: list[Outcome], params: dict[str, object]) -> Path:
    rows = []
    for o in outcomes:
        verdict = "passed" if o.ok else "FAILED"
        figs = " ".join(
            f'<a href="{html.escape(str(f.relative_to(out_dir)))}">{html.escape(f.name)}</a>'
            for f in o.figures
        )
        rows.append(
            f"<tr class='{'ok' if o.ok else 'fail'}'><td><a href='{html.escape(o.output.name)}'>"
            f"{html.escape(o.notebook.name)}</a></td><td>{verdict}</td>"
            f"<td>{o.seconds:.1f} s</td><td>{html.escape(o.error)}</td><td>{figs}</td></tr>"
        )
    embeds = []
    for o in outcomes:
        pngs = {f.stem for f in o.figures if f.suffix == ".png"}
        for f in o.figures:
            rel = html.escape(str(f.relative_to(out_dir)))
            if f.suffix == ".png":
                embeds.append(f"<h3>{html.escape(f.stem)}</h3><img src='{rel}' width='900'>")
            elif f.suffix == ".html" and f.stem not in pngs:  # no PNG (no Chromium): the page
                embeds.append(
                    f"<h3>{html.escape(f.stem)}</h3>"
                    f"<iframe src='{rel}' width='960' height='620' frameborder='0'></iframe>"
                )
    passed = sum(o.ok for o in outcomes)
    backend = html.escape(os.environ.get("ZDLAB_BACKEND", "embedded"))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    shown = html.escape(json.dumps(params))
    style = (
        "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd}.ok td:nth-child(2){color:#080}"
        ".fail td:nth-child(2){color:#c00;font-weight:bold}"
    )
    page = f"""<!doctype html><meta charset="utf-8"><title>zdlab run</title>
<style>{style}</style>
<h1>zdlab: {passed} of {len(outcomes)} notebooks passed</h1>
<p>Run at {stamp}, backend {backend}, parameters {shown}.
Each notebook's <code>assert</code> cells are its verdict.</p>
<table><tr><th>notebook</th><th>verdict</th><th>time</th><th>error</th><th>figures</th></tr>
{"".join(rows)}</table>
<h2>Charts</h2>{"".join(embeds) or "<p>No figures were saved.</p>"}
"""
    index = out_dir / "index.html"
    tmp = index.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "out"), help="output folder (default out/)")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 03 05")
    parser.add_argument("--timeout", type=float, default=900, help="per-cell timeout, seconds")
    args = parser.parse_args(argv)

    out_dir = Path(args.out).resolve()
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    params = {name: parse_value(value) for name, value in args.parameter}
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [n for n in notebooks if any(n.name.startswith(p) for p in args.only)]
    if not notebooks:
        print(f"No notebooks found in {NOTEBOOKS} yet: nothing to run.")
        write_index(out_dir, [], params)
        return 0
    # every run starts clean: notebook 08 compares every saved result, and a result left by an
    # older run (or an older version of a notebook) would sneak into its table
    for stale in (out_dir / "results").glob("*.json"):
        stale.unlink()
    if not args.only:
        for stale in (out_dir / "figures").glob("*"):
            if stale.is_file():
                stale.unlink()
    os.environ.setdefault("ZDLAB_LIVE", "0")
    os.environ.setdefault("ZDLAB_OUT", str(out_dir))
    print(f"Running {len(notebooks)} notebooks headless into {out_dir}")
    outcomes = []
    for nb in notebooks:
        print(f"-> {nb.name} ...", flush=True)
        outcome = run_one(nb, out_dir, params, args.timeout)
        outcomes.append(outcome)
        mark = "passed" if outcome.ok else f"FAILED ({outcome.error})"
        print(f"   {mark} in {outcome.seconds:.1f} s", flush=True)
    index = write_index(out_dir, outcomes, params)
    failed = [o.notebook.name for o in outcomes if not o.ok]
    print(f"Report: {index}")
    if failed:
        print(f"Failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
