"""The parameters of a load run, checked before a single request is sent.

fortio's flags are what learners know (``-qps``, ``-c``, ``-t``, ``-n``, ...), so the lab takes
the same values, including fortio's duration strings ("30s", "1m", "500ms"). Everything is
validated up front: a bad value raises :class:`~lab_app.errors.ConfigError` naming the
parameter, and no socket is opened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict, cast
from urllib.parse import urlsplit

from lab_app.errors import ConfigError
from lab_app.manifests.units import go_duration

#: A run with ``duration=0`` ("until stopped") or ``n`` at ``qps=0`` still ends after this many
#: seconds, so a forgotten notebook cell cannot load a cluster forever.
MAX_DURATION_S = 3600.0

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 75.0, 90.0, 99.0, 99.9)

Engine = Literal["auto", "h11", "httpx"]


def parse_duration(value: float | int | str | None, *, name: str = "duration") -> float:
    """Seconds from a number or a Go/fortio duration string ("30s", "1m30s", "500ms").

    A bare number (or numeric string) is seconds. Raises ConfigError on anything else.
    """
    if value is None:
        raise ConfigError(f"{name}: missing value")
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected seconds or a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parsed = go_duration(text, spaced=True)
            if parsed is None:
                raise ConfigError(
                    f"{name}: {value!r} is not a duration "
                    "(use seconds or e.g. '30s', '1m', '500ms')"
                ) from None
            seconds = parsed
    else:
        raise ConfigError(
            f"{name}: expected seconds or a duration string, got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{name}: must be a finite duration >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A Go-style duration string, the way fortio writes ``RequestedDuration`` ("5s", "1m30s")."""
    if seconds <= 0:
        return "0s"
    if seconds < 1e-6:
        return f"{round(seconds * 1e9, 6):g}ns"
    if seconds < 1e-3:
        return f"{round(seconds * 1e6, 6):g}µs"
    if seconds < 1:
        return f"{round(seconds * 1000, 6):g}ms"
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{round(secs, 6):g}s"


def parse_percentiles(value: str | Sequence[float] | None) -> tuple[float, ...]:
    """Percentiles from fortio's ``-p`` string ("50,75,90,99,99.9") or a sequence of numbers."""
    if value is None:
        return DEFAULT_PERCENTILES
    # Sequences come from Python callers: a non-number in one is caught below (TypeError).
    items: list[str | float] = [*value.split(",")] if isinstance(value, str) else [*value]
    result: list[float] = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if not item:
                continue
        try:
            p = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"percentiles: {item!r} is not a number (in {value!r})") from None
        if not (0.0 < p <= 100.0) or not math.isfinite(p):
            raise ConfigError(f"percentiles: {p:g} is outside (0, 100] (in {value!r})")
        result.append(p)
    if not result:
        raise ConfigError(f"percentiles: no percentile given in {value!r}")
    return tuple(result)


@dataclass(frozen=True)
class Target:
    """The parts of the URL the engines need, split once."""

    url: str
    scheme: str
    host: str
    port: int
    host_header: str
    path: str  # path + query, at least "/"


def parse_url(url: str) -> Target:
    """Split and check a target URL: http(s), a host, a valid port. Any host is allowed."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"url: expected an http:// or https:// URL, got {url!r}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"url: {url!r} is malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"url: {url!r} needs an http:// or https:// scheme")
    if not parts.hostname:
        raise ConfigError(f"url: {url!r} has no host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        url=url.strip(),
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        host_header=parts.netloc.rsplit("@", 1)[-1],
        path=path,
    )


@dataclass(frozen=True)
class LoadOptions:
    """A validated load run description (fortio's flags plus the lab's extras).

    ``duration`` 0 means until stopped (bounded by ``max_duration``); ``n`` > 0 means exactly
    ``n`` calls instead of a duration; ``qps`` 0 means as fast as possible. ``fortio_retry``
    turns on fortio's fast-client retry of a dead reused keep-alive socket (off by default, so
    every failure is counted).
    """

    url: str
    qps: float = 8.0
    c: int = 4
    duration: float = 5.0
    n: int = 0
    uniform: bool = False
    jitter: bool = False
    nocatchup: bool = False
    timeout: float = 3.0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    label: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    engine: Engine = "auto"
    max_duration: float = MAX_DURATION_S
    fortio_retry: bool = False
    target: Target = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", parse_url(self.url))

    @property
    def exactly(self) -> bool:
        return self.n > 0

    @property
    def planned_duration(self) -> float:
        """How long the schedule lasts (seconds); ``max_duration`` when open-ended."""
        if self.n > 0:
            return min(self.n / self.qps, self.max_duration) if self.qps > 0 else self.max_duration
        if self.duration > 0:
            return min(self.duration, self.max_duration)
        return self.max_duration

    @property
    def resolved_engine(self) -> Literal["h11", "httpx"]:
        if self.engine == "auto":
            return "h11" if self.target.scheme == "http" else "httpx"
        return self.engine


class LoadParams(TypedDict, total=False):
    """The keyword arguments of :func:`make_options`, hence of ``start_load`` and ``run_load``
    (``**params: Unpack[LoadParams]``): fortio's flags, listed once. Defaults: make_options."""

    qps: float | str
    c: int | str
    duration: float | str | None
    n: int | str
    uniform: bool
    jitter: bool
    nocatchup: bool
    timeout: float | str
    percentiles: str | Sequence[float] | None
    label: str
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None
    engine: str
    max_duration: float | str
    fortio_retry: bool


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return number


def _integer(value: object, name: str) -> int:
    number = _number(value, name)
    if number != int(number):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    return int(number)


def make_options(
    url: str,
    *,
    qps: float | str = 8.0,
    c: int | str = 4,
    duration: float | str | None = 5.0,
    n: int | str = 0,
    uniform: bool = False,
    jitter: bool = False,
    nocatchup: bool = False,
    timeout: float | str = 3.0,
    percentiles: str | Sequence[float] | None = None,
    label: str = "",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    engine: str = "auto",
    max_duration: float | str = MAX_DURATION_S,
    fortio_retry: bool = False,
) -> LoadOptions:
    """Check every parameter and build :class:`LoadOptions`; ConfigError names the bad one."""
    qps_v = _number(qps, "qps")
    if qps_v < 0:
        raise ConfigError(f"qps: must be >= 0 (0 = as fast as possible), got {qps!r}")
    c_v = _integer(c, "c")
    if c_v < 1:
        raise ConfigError(f"c: number of connections must be >= 1, got {c!r}")
    if c_v > 1000:
        raise ConfigError(f"c: at most 1000 connections, got {c!r}")
    n_v = _integer(n, "n")
    if n_v < 0:
        raise ConfigError(f"n: number of calls must be >= 0, got {n!r}")
    duration_v = parse_duration(0 if duration is None else duration, name="duration")
    timeout_v = parse_duration(timeout, name="timeout")
    if timeout_v <= 0:
        raise ConfigError(f"timeout: must be > 0, got {timeout!r}")
    max_v = parse_duration(max_duration, name="max_duration")
    if max_v <= 0:
        raise ConfigError(f"max_duration: must be > 0, got {max_duration!r}")
    if engine not in ("auto", "h11", "httpx"):
        raise ConfigError(f"engine: expected 'auto', 'h11' or 'httpx', got {engine!r}")
    header_items: list[tuple[str, str]] = []
    if headers:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for key, value in pairs:
            if not isinstance(key, str) or not key or any(ch in key for ch in ":\r\n "):
                raise ConfigError(f"headers: invalid header name {key!r}")
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ConfigError(f"headers: invalid value for {key!r}")
            header_items.append((key, value))
    options = LoadOptions(
        url=url,
        qps=qps_v,
        c=c_v,
        duration=duration_v,
        n=n_v,
        uniform=bool(uniform),
        jitter=bool(jitter),
        nocatchup=bool(nocatchup),
        timeout=timeout_v,
        percentiles=parse_percentiles(percentiles),
        label=str(label or ""),
        headers=tuple(header_items),
        engine=cast(Engine, engine),  # checked against the three names above
        max_duration=max_v,
        fortio_retry=bool(fortio_retry),
    )
    if options.engine == "h11" and options.target.scheme == "https":
        raise ConfigError("engine: 'h11' speaks plain http only; use engine='httpx' for https")
    return options
