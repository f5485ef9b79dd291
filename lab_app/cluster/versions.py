"""Which Istio and Kubernetes releases the lab imitates, and what depends on them.

Why: the answer to "does a rolling update behind Istio sidecars cut long requests?" depends on
the versions. Istio 1.27 made ``ENABLE_NATIVE_SIDECARS=auto`` the default, which injects
``istio-proxy`` as a Kubernetes native sidecar (an init container with ``restartPolicy:
Always``) when every node's kubelet is 1.33 or newer; a native sidecar outlives the app
container at pod deletion, a classic one gets SIGTERM with it. Istio 1.24 removed ``503`` from
istiod's default retriable status codes. This module answers each such question from the two
versions, with no I/O, so both backends and the experiments can ask it.

``profile(istio="1.28", kubernetes="1.34")`` returns a ``VersionProfile``; the defaults are the
current releases. Versions older than the lab can model are refused (``ConfigError``):
Istio before 1.22 (the lab's manifests use ``networking.istio.io/v1``), Kubernetes before 1.30
(the manifests' ``preStop`` uses the ``sleep`` action, on by default from 1.30; native sidecars
are on by default from 1.29).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from lab_app.errors import ConfigError

SidecarMode = Literal["native", "classic"]
SIDECAR_MODES: tuple[str, ...] = ("native", "classic")

DEFAULT_ISTIO = "1.28"
DEFAULT_KUBERNETES = "1.34"
OLDEST_ISTIO = (1, 22)  # networking.istio.io/v1 served (the manifests' apiVersion)
NEWEST_ISTIO = (1, 29)
OLDEST_KUBERNETES = (1, 30)  # preStop sleep action on by default (PodLifecycleSleepAction beta)
NEWEST_KUBERNETES = (1, 35)

# Istio: pilot/pkg/features (ENABLE_NATIVE_SIDECARS "auto" is the default from 1.27; before,
# experimental.go registered it false) and pkg/kube/inject/webhook.go DetectNativeSidecar
# (auto: every node's kubelet 1.33+, where SidecarContainers is GA).
ISTIO_NATIVE_SIDECARS_AUTO = (1, 27)
KUBERNETES_NATIVE_AUTO_MIN = (1, 33)
# Istio: EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY (default true) from 1.24, istio/istio#52111;
# route/retry/retry.go: before, the default policy had retriable_status_codes [503].
ISTIO_EXCLUDES_503 = (1, 24)
# Kubernetes: kuberuntime_container.go killContainer, minimumGracePeriodInSeconds.
MINIMUM_GRACE_PERIOD_SECONDS = 2.0
# Istio ProxyConfig defaults (mesh config): terminationDrainDuration 5 s, drainDuration 45 s;
# pilot-agent's MINIMUM_DRAIN_DURATION 5 s (pilot/cmd/pilot-agent/options/options.go).
TERMINATION_DRAIN_DURATION = 5.0
DRAIN_DURATION = 45.0
MINIMUM_DRAIN_DURATION = 5.0

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")


def parse_version(
    value: Any, *, option: str, oldest: tuple[int, int], newest: tuple[int, int]
) -> tuple[int, int]:
    """``"1.28"``, ``"1.28.2"`` or ``"v1.34.1"`` -> ``(1, 28)``; ConfigError naming ``option``."""
    example = DEFAULT_ISTIO if option == "istio" else DEFAULT_KUBERNETES
    match = _VERSION_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"{option}={value!r} is not a version: give MAJOR.MINOR as a string, "
            f"such as {option}={example!r}"
        )
    got = (int(match.group(1)), int(match.group(2)))
    span = f"{oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}"
    if got < oldest:
        raise ConfigError(
            f"{option}={value!r} is older than the lab can model (it models {span}): "
            + _WHY_OLDEST[option]
        )
    if got > newest:
        raise ConfigError(
            f"{option}={value!r} is not a release the lab knows (it models {span}); "
            "newer releases have not been checked against the lab"
        )
    return got


_WHY_OLDEST = {
    "istio": "the lab's manifests use networking.istio.io/v1, served from Istio 1.22",
    "kubernetes": "the lab's manifests use the preStop sleep action, on by default from 1.30",
}


@dataclass(frozen=True)
class VersionProfile:
    """The Istio and Kubernetes releases imitated, and the behaviours that follow from them."""

    istio: tuple[int, int]
    kubernetes: tuple[int, int]

    @property
    def istio_version(self) -> str:
        return f"{self.istio[0]}.{self.istio[1]}"

    @property
    def kubernetes_version(self) -> str:
        return f"{self.kubernetes[0]}.{self.kubernetes[1]}"

    # --- sidecars --------------------------------------------------------------------------
    @property
    def enable_native_sidecars(self) -> str:
        """istiod's ``ENABLE_NATIVE_SIDECARS`` default: ``auto`` from 1.27, ``false`` before."""
        return "auto" if self.istio >= ISTIO_NATIVE_SIDECARS_AUTO else "false"

    @property
    def native_sidecars_by_default(self) -> bool:
        """Does the injector make ``istio-proxy`` a native sidecar without any setting?"""
        return (
            self.enable_native_sidecars == "auto" and self.kubernetes >= KUBERNETES_NATIVE_AUTO_MIN
        )

    @property
    def default_sidecar_mode(self) -> SidecarMode:
        return "native" if self.native_sidecars_by_default else "classic"

    def sidecar_mode(self, annotation: str | None = None, mesh: str | None = None) -> SidecarMode:
        """A pod's sidecar mode: its ``sidecar.istio.io/nativeSidecar`` annotation first (the
        injection template treats any value but ``"false"`` as native), then the mesh-wide
        setting (``mesh``: ``"native"``/``"classic"``, i.e. ``ENABLE_NATIVE_SIDECARS=true|false``),
        then the default of these versions."""
        if annotation is not None:
            return "classic" if str(annotation).strip().lower() == "false" else "native"
        if mesh is not None:
            return check_sidecar_mode(mesh)
        return self.default_sidecar_mode

    # --- retries ---------------------------------------------------------------------------
    @property
    def default_retry_503(self) -> bool:
        """Does istiod's default retry policy retry a ``503``? (only before Istio 1.24)"""
        return self.istio < ISTIO_EXCLUDES_503

    @property
    def default_retriable_status_codes(self) -> tuple[int, ...]:
        return (503,) if self.default_retry_503 else ()

    # --- kubelet ---------------------------------------------------------------------------
    @property
    def minimum_grace_period(self) -> float:
        """SIGTERM gets at least this long before SIGKILL, even after a long preStop."""
        return MINIMUM_GRACE_PERIOD_SECONDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "istio": self.istio_version,
            "kubernetes": self.kubernetes_version,
            "enable_native_sidecars": self.enable_native_sidecars,
            "default_sidecar_mode": self.default_sidecar_mode,
            "default_retriable_status_codes": list(self.default_retriable_status_codes),
            "minimum_grace_period_seconds": self.minimum_grace_period,
        }

    def describe(self) -> str:
        why = (
            "ENABLE_NATIVE_SIDECARS=auto and kubelet 1.33+"
            if self.native_sidecars_by_default
            else (
                f"ENABLE_NATIVE_SIDECARS={self.enable_native_sidecars}"
                + (" but kubelet < 1.33" if self.enable_native_sidecars == "auto" else "")
            )
        )
        retry = "503 retried" if self.default_retry_503 else "503 not retried"
        return (
            f"Istio {self.istio_version}, Kubernetes {self.kubernetes_version}: "
            f"{self.default_sidecar_mode} sidecars by default ({why}); default retries: {retry}"
        )

    def __str__(self) -> str:
        return f"Istio {self.istio_version} / Kubernetes {self.kubernetes_version}"


def check_sidecar_mode(value: Any, option: str = "sidecar_mode") -> SidecarMode:
    mode = str(value).strip().lower() if isinstance(value, str) else None
    if mode not in SIDECAR_MODES:
        raise ConfigError(f"{option}={value!r} must be 'native' or 'classic'")
    return cast(SidecarMode, mode)  # one of SIDECAR_MODES, checked above


def profile(istio: Any = None, kubernetes: Any = None) -> VersionProfile:
    """The profile for ``istio`` and ``kubernetes`` (None: the current releases)."""
    return VersionProfile(
        istio=parse_version(
            DEFAULT_ISTIO if istio is None else istio,
            option="istio",
            oldest=OLDEST_ISTIO,
            newest=NEWEST_ISTIO,
        ),
        kubernetes=parse_version(
            DEFAULT_KUBERNETES if kubernetes is None else kubernetes,
            option="kubernetes",
            oldest=OLDEST_KUBERNETES,
            newest=NEWEST_KUBERNETES,
        ),
    )


__all__ = [
    "DEFAULT_ISTIO",
    "DEFAULT_KUBERNETES",
    "SIDECAR_MODES",
    "SidecarMode",
    "VersionProfile",
    "check_sidecar_mode",
    "parse_version",
    "profile",
]
