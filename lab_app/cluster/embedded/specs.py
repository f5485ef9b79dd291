"""Deployment and pod-template fields the embedded kubelet acts on, with Kubernetes' defaults.

Why a separate parse step: ``apply`` must reject a manifest the lab cannot run *before*
anything changes (nothing half-applied), and the kubelet and the deployment controller then
work on plain frozen dataclasses instead of re-reading nested dicts. Every error names the
manifest and the dotted field, like ``kubectl apply`` would.

Defaults are Kubernetes' own: probes ``periodSeconds`` 10, ``timeoutSeconds`` 1,
``successThreshold`` 1, ``failureThreshold`` 3, ``initialDelaySeconds`` 0;
``terminationGracePeriodSeconds`` 30; ``replicas`` 1; ``RollingUpdate`` with ``maxSurge``
and ``maxUnavailable`` 25 % (surge rounds up, unavailable rounds down; both 0 is invalid, and
if both *resolve* to 0 the controller uses ``maxUnavailable`` 1, as Kubernetes does).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab_app.errors import ManifestError

APP_PORT_NAME_DEFAULT = 8080
_SLEEP_CMD = re.compile(r"^\s*sleep\s+(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class HttpGet:
    path: str
    port: int | str  # number or the name of a container port
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TcpSocket:
    port: int | str


@dataclass(frozen=True)
class Probe:
    handler: HttpGet | TcpSocket
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class PreStop:
    """``lifecycle.preStop``: a native ``sleep``, an exec ``sleep N``, or an ``httpGet``."""

    sleep_seconds: float = 0.0
    http: HttpGet | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    ports: tuple[tuple[str, int], ...] = ()  # (name, containerPort)
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    pre_stop: PreStop | None = None
    memory_limit: int | None = None  # bytes

    def container_port(self, port: int | str) -> int:
        """A probe's ``port`` (number or name) as the container port number."""
        if isinstance(port, int):
            return port
        for name, number in self.ports:
            if name == port:
                return number
        raise KeyError(port)


@dataclass(frozen=True)
class PodTemplate:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    container: Container
    termination_grace: float = 30.0
    hash: str = ""  # pod-template-hash

    def sidecar_injection(self) -> bool | None:
        """The pod's own opt-in/opt-out (label or annotation), None when unset."""
        for source in (self.labels, self.annotations):
            value = source.get("sidecar.istio.io/inject")
            if value is not None:
                return str(value).lower() == "true"
        return None

    def proxy_config(self) -> Mapping[str, Any]:
        """``proxy.istio.io/config`` annotation (YAML/JSON), e.g. terminationDrainDuration."""
        raw = self.annotations.get("proxy.istio.io/config")
        if not raw:
            return {}
        import yaml

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Strategy:
    type: str = "RollingUpdate"
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"

    def resolve(self, replicas: int) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) as pod counts for ``replicas``, Kubernetes' fenceposts."""
        if self.type == "Recreate":
            return 0, replicas
        surge = _scaled(self.max_surge, replicas, round_up=True)
        unavailable = _scaled(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    replicas: int
    selector: Mapping[str, str]
    template: PodTemplate
    strategy: Strategy = field(default_factory=Strategy)
    min_ready_seconds: float = 0.0


def _scaled(value: int | str, total: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    x = pct * total / 100
    return math.ceil(x) if round_up else math.floor(x)


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable pod-template-hash in Kubernetes' alphabet (no vowels, no look-alikes)."""
    import hashlib

    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


# ---------------------------------------------------------------- parsing


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, path: str, message: str) -> ManifestError:
        return ManifestError(message, source=self.source, field=path)


def _int_or_pct(ctx: _Ctx, value: Any, path: str) -> int | str:
    if isinstance(value, bool):
        raise ctx.err(path, f"must be an integer or a percentage, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ctx.err(path, f"must not be negative, got {value}")
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+%", value.strip()):
        return value.strip()
    raise ctx.err(path, f"must be an integer or a percentage like '25%', got {value!r}")


def _number(
    ctx: _Ctx, spec: Mapping[str, Any], key: str, path: str, default: float, lo: float
) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < lo:
        raise ctx.err(f"{path}.{key}", f"must be a number >= {lo:g}, got {value!r}")
    return value


def _http_get(ctx: _Ctx, spec: Mapping[str, Any], path: str) -> HttpGet:
    scheme = str(spec.get("scheme", "HTTP")).upper()
    if scheme != "HTTP":
        raise ctx.err(
            f"{path}.scheme", f"only HTTP is supported by the embedded kubelet, got {scheme}"
        )
    if "port" not in spec:
        raise ctx.err(f"{path}.port", "is required")
    headers = tuple(
        (str(h.get("name", "")), str(h.get("value", ""))) for h in spec.get("httpHeaders") or ()
    )
    p = spec.get("path", "/") or "/"
    return HttpGet(path=p if p.startswith("/") else "/" + p, port=spec["port"], headers=headers)


def _exec_sleep(ctx: _Ctx, spec: Mapping[str, Any], path: str) -> float:
    """Accept ``sleep N`` (directly or through ``sh -c``); anything else cannot run here."""
    cmd = [str(c) for c in spec.get("command") or ()]
    text = " ".join(cmd)
    if len(cmd) >= 3 and cmd[0].endswith("sh") and cmd[1] == "-c":
        text = cmd[2]
    elif cmd:
        text = " ".join(shlex.quote(c) for c in cmd)
    m = _SLEEP_CMD.match(text)
    if not m:
        raise ctx.err(
            f"{path}.command",
            f"exec {cmd!r} cannot run in the embedded backend (it has no container shell); "
            "use lifecycle.preStop.sleep.seconds or an httpGet handler",
        )
    return float(m.group(1))


def _probe(ctx: _Ctx, spec: Any, path: str, *, liveness_like: bool) -> Probe | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ctx.err(path, "must be a mapping")
    handler: HttpGet | TcpSocket
    if "httpGet" in spec:
        handler = _http_get(ctx, spec["httpGet"] or {}, f"{path}.httpGet")
    elif "tcpSocket" in spec:
        handler = TcpSocket(port=(spec["tcpSocket"] or {}).get("port", 0))
    elif "exec" in spec:
        raise ctx.err(
            f"{path}.exec",
            "exec probes cannot run in the embedded backend (no container shell, no curl); "
            "use httpGet on /healthz/ready or /healthz/live",
        )
    else:
        raise ctx.err(path, "needs a handler: httpGet or tcpSocket")
    success = int(_number(ctx, spec, "successThreshold", path, 1, 1))
    if liveness_like and success != 1:
        raise ctx.err(f"{path}.successThreshold", "must be 1 for liveness and startup probes")
    return Probe(
        handler=handler,
        initial_delay=float(_number(ctx, spec, "initialDelaySeconds", path, 0, 0)),
        period=float(_number(ctx, spec, "periodSeconds", path, 10, 0.001)),
        timeout=float(_number(ctx, spec, "timeoutSeconds", path, 1, 0.001)),
        success_threshold=success,
        failure_threshold=int(_number(ctx, spec, "failureThreshold", path, 3, 1)),
    )


def _pre_stop(ctx: _Ctx, spec: Any, path: str) -> PreStop | None:
    if not spec:
        return None
    if "sleep" in spec:
        seconds = _number(ctx, spec["sleep"] or {}, "seconds", f"{path}.sleep", 0, 0)
        return PreStop(sleep_seconds=float(seconds))
    if "exec" in spec:
        return PreStop(sleep_seconds=_exec_sleep(ctx, spec["exec"] or {}, f"{path}.exec"))
    if "httpGet" in spec:
        return PreStop(http=_http_get(ctx, spec["httpGet"] or {}, f"{path}.httpGet"))
    raise ctx.err(path, "needs a handler: sleep, exec (sleep N) or httpGet")


def memory_bytes(value: Any, *, source: str = "", field: str = "") -> int:
    """``resources.limits.memory`` ('256M', '256Mi', 268435456) in bytes."""
    from lab_app.manifests import parse_quantity

    try:
        amount = parse_quantity(value)
    except ManifestError:
        raise
    except (ValueError, TypeError) as exc:
        raise ManifestError(
            f"not a memory quantity: {value!r} ({exc})", source=source, field=field
        ) from None
    return int(amount)


def _container(ctx: _Ctx, spec: Mapping[str, Any], path: str) -> Container:
    for key in ("command", "args"):
        if spec.get(key):
            raise ctx.err(
                f"{path}.{key}",
                "the embedded backend runs the image's own entrypoint "
                "(python -m lab_app.service); remove it",
            )
    ports: list[tuple[str, int]] = []
    for i, p in enumerate(spec.get("ports") or ()):
        number = p.get("containerPort")
        if not isinstance(number, int) or not 0 < number < 65536:
            raise ctx.err(f"{path}.ports[{i}].containerPort", f"must be 1..65535, got {number!r}")
        ports.append((str(p.get("name", "")), number))
    limits = (spec.get("resources") or {}).get("limits") or {}
    memory = None
    if "memory" in limits:
        memory = memory_bytes(
            limits["memory"], source=ctx.source, field=f"{path}.resources.limits.memory"
        )
    container = Container(
        name=str(spec.get("name", "app")),
        image=str(spec.get("image", "")),
        ports=tuple(ports),
        env=tuple(spec.get("env") or ()),
        env_from=tuple(spec.get("envFrom") or ()),
        readiness=_probe(
            ctx, spec.get("readinessProbe"), f"{path}.readinessProbe", liveness_like=False
        ),
        liveness=_probe(
            ctx, spec.get("livenessProbe"), f"{path}.livenessProbe", liveness_like=True
        ),
        startup=_probe(ctx, spec.get("startupProbe"), f"{path}.startupProbe", liveness_like=True),
        pre_stop=_pre_stop(
            ctx, (spec.get("lifecycle") or {}).get("preStop"), f"{path}.lifecycle.preStop"
        ),
        memory_limit=memory,
    )
    for kind in ("readiness", "liveness", "startup"):
        probe: Probe | None = getattr(container, kind)
        if probe is not None:
            try:
                container.container_port(probe.handler.port)
            except KeyError:
                raise ctx.err(
                    f"{path}.{kind}Probe",
                    f"port {probe.handler.port!r} is not a named port of the container "
                    f"(ports: {[n for n, _ in ports]})",
                ) from None
    for i, item in enumerate(container.env):
        if "name" not in item:
            raise ctx.err(f"{path}.env[{i}].name", "is required")
        ref = (item.get("valueFrom") or {}).get("fieldRef")
        if ref and ref.get("fieldPath") not in _FIELD_PATHS:
            raise ctx.err(
                f"{path}.env[{i}].valueFrom.fieldRef.fieldPath",
                f"{ref.get('fieldPath')!r} is not supported (supported: {', '.join(_FIELD_PATHS)})",
            )
    return container


_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "status.podIP",
    "status.hostIP",
    "spec.nodeName",
    "spec.serviceAccountName",
)


def parse_pod_template(
    template: Mapping[str, Any], *, source: str, path: str = "spec.template"
) -> PodTemplate:
    ctx = _Ctx(source)
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise ctx.err(
            f"{path}.spec.containers",
            f"the embedded backend runs exactly one app container per pod, got {len(containers)} "
            "(the Istio sidecar is injected, not declared)",
        )
    if spec.get("initContainers"):
        raise ctx.err(f"{path}.spec.initContainers", "init containers are not supported here")
    restart = spec.get("restartPolicy", "Always")
    if restart != "Always":
        raise ctx.err(
            f"{path}.spec.restartPolicy", f"a Deployment's pods restart Always, got {restart}"
        )
    grace = _number(ctx, spec, "terminationGracePeriodSeconds", f"{path}.spec", 30, 0)
    return PodTemplate(
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        container=_container(ctx, containers[0], f"{path}.spec.containers[0]"),
        termination_grace=float(grace),
        hash=template_hash(dict(template)),
    )


def parse_deployment(obj: Mapping[str, Any], *, source: str) -> DeploymentSpec:
    ctx = _Ctx(source)
    name = str((obj.get("metadata") or {}).get("name", ""))
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ctx.err("spec.replicas", f"must be an integer >= 0, got {replicas!r}")
    selector = dict(((spec.get("selector") or {}).get("matchLabels")) or {})
    if (spec.get("selector") or {}).get("matchExpressions"):
        raise ctx.err("spec.selector.matchExpressions", "only matchLabels is supported here")
    if not selector:
        raise ctx.err("spec.selector.matchLabels", "is required")
    template = parse_pod_template(spec.get("template") or {}, source=source)
    for k, v in selector.items():
        if template.labels.get(k) != str(v):
            raise ctx.err(
                "spec.template.metadata.labels",
                f"selector {selector} does not match the template's labels {dict(template.labels)}",
            )
    raw_strategy = spec.get("strategy") or {}
    stype = raw_strategy.get("type", "RollingUpdate")
    if stype not in ("RollingUpdate", "Recreate"):
        raise ctx.err("spec.strategy.type", f"must be RollingUpdate or Recreate, got {stype!r}")
    ru = raw_strategy.get("rollingUpdate") or {}
    if stype == "Recreate" and ru:
        raise ctx.err("spec.strategy.rollingUpdate", "may not be set when type is Recreate")
    surge = _int_or_pct(ctx, ru.get("maxSurge", "25%"), "spec.strategy.rollingUpdate.maxSurge")
    unavailable = _int_or_pct(
        ctx, ru.get("maxUnavailable", "25%"), "spec.strategy.rollingUpdate.maxUnavailable"
    )
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        raise ctx.err("spec.strategy.rollingUpdate.maxUnavailable", "must not be more than 100%")
    if stype == "RollingUpdate" and _is_zero(surge) and _is_zero(unavailable):
        raise ctx.err(
            "spec.strategy.rollingUpdate.maxUnavailable",
            "may not be 0 when maxSurge is 0 (the rollout could never make progress)",
        )
    return DeploymentSpec(
        name=name,
        replicas=replicas,
        selector=selector,
        template=template,
        strategy=Strategy(type=stype, max_surge=surge, max_unavailable=unavailable),
        min_ready_seconds=float(_number(ctx, spec, "minReadySeconds", "spec", 0, 0)),
    )


def _is_zero(value: int | str) -> bool:
    return value == 0 or (isinstance(value, str) and int(value[:-1]) == 0)
