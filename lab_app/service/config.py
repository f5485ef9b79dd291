"""The demo service's configuration, read from the environment only.

Why environment only: in Kubernetes the service gets its settings from a ConfigMap through
``envFrom``, the same way the original Spring Boot demo did, and the embedded backend starts
pods as processes with the same variables. A value the service does not understand must stop
it at once (exit status 2, a message naming the variable and the accepted values) rather than
be silently replaced by a default: a lab that quietly ignores ``SHUTDOWN_MODE=fast`` would
"prove" the wrong thing.

This module imports only the standard library: it is copied into the container image with the
rest of ``lab_app.service``.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ShutdownMode = Literal["naive", "graceful"]
SHUTDOWN_MODES: tuple[ShutdownMode, ...] = ("naive", "graceful")

#: Written by image builds (see ``build_info.py``); supplies defaults for APP_VERSION/IMAGE_ID.
BUILD_INFO_PATH = Path(__file__).with_name("build_info.json")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
# A version goes into an HTTP header and a log line: keep it to a token without spaces.
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,62}")
# Image ids and pod names: printable ASCII without spaces (digests, refs, DNS names).
_PRINTABLE_RE = re.compile(r"[\x21-\x7e]{1,256}")


class ServiceConfigError(ValueError):
    """One or more configuration values are not acceptable; the message names each of them.

    The service cannot import ``lab_app.errors`` (it is copied into the image on its own), so
    this is a plain ``ValueError``; the command line turns it into exit status 2.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the service reads from its environment, validated. Fields mirror the
    variables in docs/architecture.md (seconds as floats, sizes in MiB)."""

    app_version: str = "v1"
    image_id: str = "dev"
    pod_name: str = field(default_factory=socket.gethostname)
    shutdown_mode: ShutdownMode = "graceful"
    drain_seconds: float = 0.0
    grace_seconds: float = 30.0
    enable_fault_endpoints: bool = False
    memory_limit_mb: int | None = None  # unset: the leak never kills its own process
    fullgc_seconds: float = 2.0
    longtask_workers: int = 5
    fault_error_rate: float = 0.0
    fault_delay_ms: float = 0.0
    keepalive_seconds: float = 5.0


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _number(
    kind: Callable[[str], float], low: float, high: float, *, low_open: bool = False
) -> Callable[[str], Any]:
    """A parser for a number in [low, high] (or (low, high] when ``low_open``)."""
    noun = "an integer" if kind is int else "a number"
    if low_open:
        accepted = f"{noun} above {_fmt(low)}, at most {_fmt(high)}"
    else:
        accepted = f"{noun} from {_fmt(low)} to {_fmt(high)}"

    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(accepted) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(accepted)
        if value < low or value > high or (low_open and value == low):
            raise ValueError(accepted)
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(", ".join(choices))
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("true or false (also accepted: 1/0, yes/no, on/off)")


def _pattern(regex: re.Pattern[str], accepted: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not regex.fullmatch(value):
            raise ValueError(accepted)
        return value

    return parse


# variable -> (ServiceConfig field, parser). The parser raises ValueError(accepted values).
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "APP_VERSION": (
        "app_version",
        _pattern(_VERSION_RE, "letters, digits and ._+- (1 to 63 characters, e.g. v1)"),
    ),
    "IMAGE_ID": ("image_id", _pattern(_PRINTABLE_RE, "printable text without spaces")),
    "POD_NAME": ("pod_name", _pattern(_PRINTABLE_RE, "printable text without spaces")),
    "SHUTDOWN_MODE": ("shutdown_mode", _choice(*SHUTDOWN_MODES)),
    "DRAIN_SECONDS": ("drain_seconds", _number(float, 0, 3600)),
    "GRACE_SECONDS": ("grace_seconds", _number(float, 0, 3600)),
    "ENABLE_FAULT_ENDPOINTS": ("enable_fault_endpoints", _boolean),
    "MEMORY_LIMIT_MB": ("memory_limit_mb", _number(int, 1, 1 << 20)),
    "FULLGC_SECONDS": ("fullgc_seconds", _number(float, 0, 60)),
    "LONGTASK_WORKERS": ("longtask_workers", _number(int, 1, 1000)),
    "FAULT_ERROR_RATE": ("fault_error_rate", _number(float, 0, 1)),
    "FAULT_DELAY_MS": ("fault_delay_ms", _number(float, 0, 60_000)),
    "KEEPALIVE_SECONDS": ("keepalive_seconds", _number(float, 0, 3600, low_open=True)),
}

#: The variables the service reads, in the order of docs/architecture.md's table.
VARIABLES: tuple[str, ...] = tuple(_VARIABLES)


def read_build_info(path: Path = BUILD_INFO_PATH) -> dict[str, str]:
    """The ``{"version", "image_id"}`` an image build wrote, or ``{}`` outside an image.

    A present but broken file is an error: it means the image was built wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ServiceConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})"
        raise ServiceConfigError([problem]) from None
    if not isinstance(data, dict):
        raise ServiceConfigError([f"{path}: must hold a JSON object with version and image_id"])
    info: dict[str, str] = {}
    for key in ("version", "image_id"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise ServiceConfigError([f"{path}: {key!r} must be a non-empty string"])
            info[key] = data[key]
    return info


def load_config(
    environ: Mapping[str, str] | None = None, *, build_info_path: Path = BUILD_INFO_PATH
) -> ServiceConfig:
    """Build a :class:`ServiceConfig` from ``environ`` (default ``os.environ``).

    An empty variable counts as unset. Every invalid variable is reported, not just the
    first, in one :class:`ServiceConfigError`.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []

    build_info = read_build_info(build_info_path)
    defaults = {"APP_VERSION": build_info.get("version"), "IMAGE_ID": build_info.get("image_id")}
    for variable, (attr, parse) in _VARIABLES.items():
        raw = env.get(variable, "")
        source = variable
        if raw.strip() == "" and defaults.get(variable):
            raw, source = defaults[variable] or "", f"{variable} (from {build_info_path.name})"
        if raw.strip() == "":
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            problems.append(f"{source}={raw!r} is not valid; accepted values: {exc}")
    if problems:
        raise ServiceConfigError(problems)
    return ServiceConfig(**values)


def write_build_info(version: str, image_id: str, path: Path = BUILD_INFO_PATH) -> Path:
    """Record an image build's version and image id next to the package (run by the Dockerfile).

    Validates both with the same rules as APP_VERSION/IMAGE_ID, so a bad ``--build-arg`` fails
    the build instead of every container start.
    """
    problems = []
    if not _VERSION_RE.fullmatch(version):
        problems.append(f"VERSION={version!r} is not valid; accepted values: letters, digits, ._+-")
    if not _PRINTABLE_RE.fullmatch(image_id):
        problems.append(f"IMAGE_ID={image_id!r} is not valid; accepted: text without spaces")
    if problems:
        raise ServiceConfigError(problems)
    path.write_text(json.dumps({"version": version, "image_id": image_id}) + "\n", "utf-8")
    return path
