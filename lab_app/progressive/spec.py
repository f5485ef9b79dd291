"""What a cutover is asked to do, validated before it touches a cluster: ``make_spec``.

Every parameter is checked here (``ConfigError`` naming the first bad one), so a typo in a
notebook cell fails at once rather than after the first weight change; the controller then
only reads a ``CutoverSpec``. ``build_steps`` turns Flagger's ``stepWeight``/``maxWeight``
into the explicit weights the lab uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypedDict, cast

from lab_app.errors import ConfigError
from lab_app.load.records import Record
from lab_app.progressive.analysis import LoadSource, check_load_source
from lab_app.progressive.checks import DEFAULT_CHECKS, Check, parse_checks

DEFAULT_STEPS: tuple[int, ...] = (10, 25, 50, 100)

# ``load=``: one source, several (a run per client), or a plain list of Records.
LoadArg: TypeAlias = LoadSource | Sequence[LoadSource] | None
CheckArg: TypeAlias = Iterable[str | Mapping[str, Any] | Check] | str


def _number(name: str, value: object, *, minimum: float, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if (value <= minimum) if strict else (value < minimum):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _weight(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer percentage 1..100, got {value!r}")
    if value > 100:
        raise ConfigError(f"{name} = {value} is over 100: a weight is a percentage 1..100")
    if value < 1:
        raise ConfigError(f"{name} = {value}: a step must send the canary some traffic (1..100)")
    return value


def build_steps(
    steps: Sequence[int] | None, step_weight: int | None, max_weight: int | None
) -> tuple[int, ...]:
    """The canary weights, from explicit ``steps`` or Flagger's ``stepWeight``/``maxWeight``.

    Flagger adds ``stepWeight`` each interval until ``maxWeight`` (the last step is capped at
    it), then promotes: ``step_weight=20, max_weight=50`` gives 20, 40, 50.
    """
    if steps is not None and (step_weight is not None or max_weight is not None):
        raise ConfigError("give either steps or step_weight/max_weight (Flagger), not both")
    if steps is None and step_weight is None:
        if max_weight is not None:
            raise ConfigError("max_weight needs step_weight")
        steps = DEFAULT_STEPS
    if steps is None:
        sw = _weight("step_weight", step_weight)
        mw = _weight("max_weight", 100 if max_weight is None else max_weight)
        if sw > mw:
            raise ConfigError(f"step_weight {sw} is above max_weight {mw}")
        out = list(range(sw, mw + 1, sw))
        if out[-1] != mw:
            out.append(mw)
        return tuple(out)
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise ConfigError(
            f"steps must be a list of weights such as [10, 25, 50, 100], not {steps!r}"
        )
    if not steps:
        raise ConfigError("steps is empty: give at least one weight, e.g. [10, 25, 50, 100]")
    checked = [_weight(f"steps[{i}]", w) for i, w in enumerate(steps)]
    for i in range(1, len(checked)):
        if checked[i] <= checked[i - 1]:
            raise ConfigError(
                f"steps must increase: steps[{i}] = {checked[i]} follows {checked[i - 1]} "
                f"(got {list(checked)})"
            )
    return tuple(checked)


@dataclass(frozen=True)
class CutoverSpec:
    """A validated cutover: everything ``progressive_cutover`` was asked to do."""

    virtualservice: str
    stable: str
    canary: str
    steps: tuple[int, ...]
    interval_s: float
    checks: tuple[Check, ...]
    threshold: int
    stable_version: str
    canary_version: str
    scale_down: str | None = None
    scale_down_canary: str | None = None
    idle_window_s: float = 1.0
    idle_timeout_s: float = 60.0
    settle_timeout_s: float = 30.0

    @property
    def needs_load(self) -> bool:
        return any(c.source == "load" for c in self.checks)

    @property
    def needs_gateway(self) -> bool:
        return any(c.source == "gateway" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "virtualservice": self.virtualservice,
            "stable": self.stable,
            "canary": self.canary,
            "steps": list(self.steps),
            "interval_s": self.interval_s,
            "threshold": self.threshold,
            "checks": [
                {
                    "name": c.name,
                    "source": c.source,
                    "metric": c.metric,
                    "scope": c.scope,
                    "threshold": c.threshold_text(),
                    "min_requests": c.min_requests,
                }
                for c in self.checks
            ],
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "scale_down": self.scale_down,
            "scale_down_canary": self.scale_down_canary,
            "idle_window_s": self.idle_window_s,
        }


class SpecOptions(TypedDict, total=False):
    """The options of ``make_spec`` (which gives their defaults) that ``progressive_cutover``
    passes on as they are."""

    steps: Sequence[int] | None
    step_weight: int | None
    max_weight: int | None
    interval_s: float
    checks: CheckArg
    threshold: int
    stable_version: str | None
    canary_version: str | None
    scale_down: str | None
    scale_down_canary: str | None
    idle_window_s: float
    idle_timeout_s: float
    settle_timeout_s: float


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty name, got {value!r}")
    return value.strip()


def make_spec(
    virtualservice: str,
    stable: str,
    canary: str,
    *,
    steps: Sequence[int] | None = None,
    step_weight: int | None = None,
    max_weight: int | None = None,
    interval_s: float = 5.0,
    checks: CheckArg = DEFAULT_CHECKS,
    threshold: int = 2,
    stable_version: str | None = None,
    canary_version: str | None = None,
    scale_down: str | None = None,
    scale_down_canary: str | None = None,
    idle_window_s: float = 1.0,
    idle_timeout_s: float = 60.0,
    settle_timeout_s: float = 30.0,
) -> CutoverSpec:
    """Validate every parameter (ConfigError naming the first bad one); touches no cluster."""
    vs = _name("virtualservice", virtualservice)
    stable = _name("stable (subset)", stable)
    canary = _name("canary (subset)", canary)
    if stable == canary:
        raise ConfigError(f"stable and canary are both {stable!r}: a cutover needs two subsets")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(
            f"threshold (failed checks before rollback) must be an integer >= 1, got {threshold!r}"
        )
    for what, value in (("scale_down", scale_down), ("scale_down_canary", scale_down_canary)):
        if value is not None:
            _name(what, value)
    return CutoverSpec(
        virtualservice=vs,
        stable=stable,
        canary=canary,
        steps=build_steps(steps, step_weight, max_weight),
        interval_s=_number("interval_s", interval_s, minimum=0.0),
        checks=parse_checks(checks),
        threshold=threshold,
        stable_version=_name("stable_version", stable_version or stable.removeprefix("version-")),
        canary_version=_name("canary_version", canary_version or canary.removeprefix("version-")),
        scale_down=scale_down,
        scale_down_canary=scale_down_canary,
        idle_window_s=_number("idle_window_s", idle_window_s, minimum=0.0),
        idle_timeout_s=_number("idle_timeout_s", idle_timeout_s, minimum=0.0),
        settle_timeout_s=_number("settle_timeout_s", settle_timeout_s, minimum=0.0),
    )


def load_sources(load: LoadArg) -> list[LoadSource]:
    """``load=`` as a list of sources (ConfigError naming a type ``window_records`` cannot
    read); a list of Records is one source, not many."""
    if load is None:
        return []
    items: list[object] = list(load) if isinstance(load, list | tuple) else [load]
    if items and all(hasattr(s, "sent") and hasattr(s, "code") for s in items):
        return [cast(Sequence[Record], items)]
    for source in items:
        check_load_source(source)
    return [cast(LoadSource, s) for s in items]
