"""The skeleton every experiment follows: set up, start the load runs, act, collect.

Why a shared skeleton: interruption (Ctrl-C, a notebook's stop button) must keep what was
measured and stop everything, in every experiment alike; and the load runs must be collected
the same way whether the experiment finished or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lab_app.cluster import Cluster
from lab_app.cluster.base import ManifestSource
from lab_app.experiments.common import Interrupted, Stopper, use_cluster
from lab_app.experiments.result import ExperimentResult


@dataclass(frozen=True)
class LoadSpec:
    """One load run of an experiment (fortio's flags)."""

    label: str
    path: str
    qps: float
    c: int
    timeout: float = 3.0
    # spread the connections' first sends over one period (fortio's -uniform): without it
    # every connection fires at t=0, and a slow endpoint such as /k8s/longTask gets bursts
    uniform: bool = True


class Session:
    """An experiment in progress: its cluster, stopper, load runs and result."""

    def __init__(self, cluster: Cluster, stopper: Stopper, result: ExperimentResult) -> None:
        self.cluster = cluster
        self.stopper = stopper
        self.result = result
        self.runs: dict[str, Any] = {}
        self.t0 = time.time()

    def step(self, action: str, **data: Any) -> dict[str, Any]:
        entry = {"t": time.time(), "action": action, **data}
        self.result.steps.append(entry)
        self.cluster.note(action, obj="experiment", **{k: v for k, v in data.items() if k != "t"})
        return entry

    async def build_images(self, *versions: str) -> dict[str, str]:
        """Build each version's image; one step records them (``v1=<image>, ...``)."""
        images = {v: await self.stopper.run(self.cluster.build_image(v)) for v in versions}
        self.step("images built", **images)
        return images

    async def deploy(
        self, docs: Iterable[ManifestSource], deployments: Iterable[str], timeout: float
    ) -> None:
        """Apply ``docs`` in order, then wait for each of ``deployments`` to roll out."""
        for doc in docs:
            await self.stopper.run(self.cluster.apply(doc))
        for name in deployments:
            await self.stopper.run(self.cluster.wait_rollout(name, timeout=timeout))

    def start_loads(self, base_url: str, specs: list[LoadSpec], duration: float) -> None:
        from lab_app.load import start_load

        for spec in specs:
            self.runs[spec.label] = start_load(
                base_url + spec.path,
                qps=spec.qps,
                c=spec.c,
                duration=duration,
                timeout=spec.timeout,
                uniform=spec.uniform,
                label=spec.label,
            )
        self.step("load started", url=base_url, loads=[s.label for s in specs], duration=duration)

    async def wait_loads(self) -> None:
        """Wait for every load run to finish (or for a stop: then stop them)."""
        tasks = {run.task for run in self.runs.values()}
        if not tasks:
            return
        stop = asyncio.ensure_future(self.stopper.event.wait())
        try:
            pending = tasks
            while pending and not self.stopper.stopped:
                _, pending = await asyncio.wait(
                    pending | {stop}, return_when=asyncio.FIRST_COMPLETED
                )
                pending = {t for t in pending if t is not stop}
        finally:
            stop.cancel()
        self.stopper.check()

    async def collect(self) -> None:
        """Stop what still runs and put every run's results into the experiment result."""
        for run in self.runs.values():
            if not run.done:
                run.stop()
        for label, run in self.runs.items():
            with contextlib.suppress(BaseException):
                await run
            self.result.loads[label] = run.results


async def run_session(
    scenario: str,
    *,
    cluster: Cluster | None,
    cluster_options: Mapping[str, Any],
    params: Mapping[str, Any],
    stop: asyncio.Event | None,
    body: Callable[[Session], Awaitable[None]],
) -> ExperimentResult:
    """Run ``body`` on a cluster (owned or borrowed); always return a result."""
    result = ExperimentResult(scenario=scenario, params=dict(params))
    stopper = Stopper(stop)
    async with use_cluster(cluster, cluster_options) as (c, _owned):
        result.backend = c.backend
        session = Session(c, stopper, result)
        try:
            await body(session)
        except Interrupted:
            result.interrupted = True
            result.notes.append("interrupted: the results below are partial")
        finally:
            await session.collect()
            result.events = c.events(since=session.t0 - 0.001)
            result.ended = time.time()
    return result
