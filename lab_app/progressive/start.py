"""How a cutover is started: awaited, or in the background with a handle.

``await progressive_cutover(...)`` validates the parameters, runs the ``Controller`` and
returns the ``CutoverResult``. ``start_progressive(...)`` runs the same as a task and returns
at once a ``ProgressiveCutover``: later notebook cells pause, resume, promote or abort it (the
manual gates of Argo Rollouts), chart its decisions as they come (``handle.subscribe()``)
and ``await handle`` for the result.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Generator
from typing import Any, Unpack

from lab_app.cluster.base import Cluster
from lab_app.cluster.events import Event
from lab_app.errors import ConfigError
from lab_app.progressive.controller import Controller, OnDecision
from lab_app.progressive.decisions import Analysis, CutoverResult, Decision, Phase
from lab_app.progressive.gates import Gate
from lab_app.progressive.spec import LoadArg, SpecOptions, load_sources, make_spec


async def progressive_cutover(
    cluster: Cluster,
    virtualservice: str,
    stable: str,
    canary: str,
    *,
    load: LoadArg = None,
    gate: Gate | None = None,
    on_decision: OnDecision | None = None,
    **options: Unpack[SpecOptions],
) -> CutoverResult:
    """Move ``virtualservice``'s traffic from subset ``stable`` to ``canary`` step by step.

    ``steps`` (default 10, 25, 50, 100) or Flagger's ``step_weight``/``max_weight`` give the
    canary weights; ``interval_s`` is the analysis window at each; ``checks`` are names or
    Flagger-style dicts (see ``lab_app.progressive.checks``); ``threshold`` failed checks roll
    back. ``load`` is the ``LoadRun`` (or runs) whose records the load checks read.
    ``stable_version``/``canary_version`` are the ``x-app-version`` of each subset (default:
    the subset name without ``version-``). ``scale_down``: the stable version's Deployment,
    scaled to 0 after a promotion once idle; ``scale_down_canary``: the canary's, after a
    rollback. ``gate``: manual pause/promote/abort (``start_progressive`` makes one).

    The other options (``SpecOptions``) go to ``make_spec``, which gives their defaults.

    Raises ConfigError/ManifestError before any weight changes on bad input.
    """
    spec = make_spec(virtualservice, stable, canary, **options)
    controller = Controller(cluster, spec, load_sources(load), gate or Gate(), on_decision)
    return await controller.run()


class ProgressiveCutover:
    """A cutover running in the background (``start_progressive``): gates, decisions, result.

    >>> ctl = start_progressive(cluster, "zero-downtime-rollingupdate", "version-v1",
    ...                         "version-v2", load=run)
    >>> ctl.pause(); ...; ctl.promote()      # from any later cell
    >>> result = await ctl
    """

    def __init__(self, controller: Controller) -> None:
        self._controller = controller
        self.spec = controller.spec
        self.gate = controller.gate
        self._task: asyncio.Task[CutoverResult] = asyncio.get_running_loop().create_task(
            controller.run(), name=f"zdlab-progressive {controller.spec.virtualservice}"
        )

    def __await__(self) -> Generator[Any, None, CutoverResult]:
        return self._task.__await__()

    @property
    def task(self) -> asyncio.Task[CutoverResult]:
        return self._task

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def state(self) -> Phase:
        """starting, progressing, paused, promoted, rolled-back, aborted, failed or refused."""
        return self._controller.state

    @property
    def weight(self) -> int:
        """The canary's current weight (percent)."""
        return self._controller.weight

    @property
    def decisions(self) -> list[Decision]:
        return list(self._controller.decisions)

    @property
    def analyses(self) -> list[Analysis]:
        return list(self._controller.analyses)

    @property
    def events(self) -> list[Event]:
        return self._controller.events

    def subscribe(self) -> AsyncIterator[Event]:
        """Decision events for a chart (``chart.follow(ctl.subscribe())``)."""
        return self._controller.subscribe()

    def pause(self, reason: str = "paused by hand") -> None:
        self.gate.pause(reason)

    def resume(self, reason: str = "resumed by hand") -> None:
        self.gate.resume(reason)

    def promote(self, reason: str = "promoted by hand: remaining steps and checks skipped") -> None:
        self.gate.promote(reason)

    def abort(self, reason: str = "aborted by hand") -> None:
        self.gate.abort(reason)

    def cancel(self) -> None:
        """Cancel the task; traffic goes back to the stable subset first (best effort)."""
        self._task.cancel()

    def __repr__(self) -> str:
        return (
            f"<ProgressiveCutover {self.spec.stable} -> {self.spec.canary} {self.state} "
            f"canary {self.weight} % decisions={len(self._controller.decisions)}>"
        )


def start_progressive(
    cluster: Cluster,
    virtualservice: str,
    stable: str,
    canary: str,
    **options: Any,
) -> ProgressiveCutover:
    """``progressive_cutover`` as a background task on the running loop; returns its handle.

    Bad parameters raise ConfigError here, at once; what needs the cluster (the
    VirtualService, the subsets) is checked first thing in the task and raised by
    ``await handle``, still before any weight changes.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError(
            "start_progressive needs a running event loop (a notebook cell or an async "
            "function); in a script, await progressive_cutover(...)"
        ) from None
    gate = options.pop("gate", None) or Gate()
    on_decision = options.pop("on_decision", None)
    load = options.pop("load", None)
    known = set(inspect.signature(make_spec).parameters) - {"virtualservice", "stable", "canary"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"start_progressive: unknown option(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known | {'gate', 'on_decision', 'load'}))})"
        )
    spec = make_spec(virtualservice, stable, canary, **options)
    return ProgressiveCutover(Controller(cluster, spec, load_sources(load), gate, on_decision))
