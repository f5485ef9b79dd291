"""The lab's experiments: rollouts under load whose outcome is measured, not asserted.

Each is ``async def run_<name>(cluster=None, *, qps, duration/step_seconds, ...) ->
ExperimentResult``; with ``cluster=None`` it starts its own embedded cluster (options via
``cluster_options``) and stops it at the end. Notebooks, ``zdlab experiment NAME`` and the
tests all run these functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lab_app.experiments.cutover import run_subset_cutover
from lab_app.experiments.progressive import run_progressive
from lab_app.experiments.result import ExperimentResult
from lab_app.experiments.rolling import (
    run_hardened_rolling_update,
    run_naive_rolling_update,
    run_sidecar_rolling_update,
)

EXPERIMENTS: dict[str, Callable[..., Awaitable[ExperimentResult]]] = {
    "naive-rolling-update": run_naive_rolling_update,
    "hardened-rolling-update": run_hardened_rolling_update,
    "sidecar-rolling-update": run_sidecar_rolling_update,
    "subset-cutover": run_subset_cutover,
    "progressive": run_progressive,
}


async def run_experiment(name: str, **kwargs: Any) -> ExperimentResult:
    """Run the experiment called ``name`` (see ``EXPERIMENTS``)."""
    from lab_app.errors import ConfigError

    fn = EXPERIMENTS.get(name)
    if fn is None:
        raise ConfigError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
    return await fn(**kwargs)


__all__ = [
    "EXPERIMENTS",
    "ExperimentResult",
    "run_experiment",
    "run_hardened_rolling_update",
    "run_naive_rolling_update",
    "run_sidecar_rolling_update",
    "run_subset_cutover",
]
