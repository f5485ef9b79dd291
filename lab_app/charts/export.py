"""Writing figures to files: self-contained HTML always works; PNG needs Chrome/Chromium.

kaleido 1.x renders through a Chrome-family browser found by choreographer (Debian's
``/usr/bin/chromium`` works; kaleido's own Chrome download needs the network, which the lab does
not have), so the browser is looked up first and its absence is one clear error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import plotly.graph_objects as go

from lab_app.errors import LabError


class ChromeNotFoundError(LabError, FileNotFoundError):
    """No Chrome/Chromium for kaleido: PNG export is impossible (HTML export still works)."""


_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chrome() -> str | None:
    """Path of a Chrome/Chromium kaleido can drive: ``BROWSER_PATH``, choreographer's search
    (its own download, then the usual names and paths), then PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file() and os.access(env, os.X_OK):
        return env
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
        if found:
            return found
    except Exception:  # choreographer missing or changed: fall back to PATH
        pass
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _atomic_target(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Where to write (parents created) and the temporary name renamed over it at the end."""
    from lab_app.errors import ConfigError

    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"save: {str(target)!r} is a directory, expected a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"save: cannot create {str(target.parent)!r}: {exc}") from None
    return target, target.with_name(f".{target.name}.tmp{os.getpid()}{target.suffix}")


def save_html(
    fig: go.Figure, path: str | os.PathLike[str], *, include_plotlyjs: bool | str = True
) -> Path:
    """Write ``fig`` as HTML (plotly.js embedded by default, so it opens offline)."""
    target, tmp = _atomic_target(path)
    fig.write_html(tmp, include_plotlyjs=include_plotlyjs, full_html=True)
    os.replace(tmp, target)
    return target


def save_png(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    width: int = 1200,
    height: int | None = None,
    scale: float = 1.0,
) -> Path:
    """Write ``fig`` as PNG with kaleido; raises ChromeNotFoundError when no browser is found."""
    chrome = find_chrome()
    if chrome is None:
        raise ChromeNotFoundError(
            "PNG export needs Chrome or Chromium for kaleido and none was found "
            "(install Debian's 'chromium' or set BROWSER_PATH); save_html() works without it"
        )
    target, tmp = _atomic_target(path)
    previous = os.environ.get("BROWSER_PATH")
    os.environ["BROWSER_PATH"] = chrome
    try:
        fig.write_image(tmp, format="png", width=width, height=height, scale=scale)
    finally:
        if previous is None:
            os.environ.pop("BROWSER_PATH", None)
        else:
            os.environ["BROWSER_PATH"] = previous
    os.replace(tmp, target)
    return target
