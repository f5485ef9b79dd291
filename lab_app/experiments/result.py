"""``ExperimentResult``: what an experiment measured, in one JSON-able object.

Why one shape for every experiment: the notebooks chart it, the CLI prints and saves it, the
tests assert on it, and a run on the kubernetes backend must be comparable with one on the
embedded backend. Totals (``requests``, ``codes``, ``non_2xx``, ``by_version``) add up every
load run; ``loads`` keeps each run (``/k8s/demo``, ``/k8s/longTask``) apart with its fortio
JSON; ``steps`` are the experiment's own marks (a rollout, a weight change and the shares it
produced); ``events`` are the cluster's events during the run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_app.cluster.events import Event


@dataclass
class ExperimentResult:
    scenario: str
    backend: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    loads: dict[str, Any] = field(default_factory=dict)  # label -> LoadResults
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # experiment-specific measurements

    # ------------------------------------------------------------------ totals
    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.loads.values())

    @property
    def codes(self) -> dict[int, int]:
        return self._added_up("codes")

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.loads.values())

    @property
    def by_version(self) -> dict[str, int]:
        return self._added_up("by_version")

    @property
    def by_flags(self) -> dict[str, int]:
        return self._added_up("by_flags")

    def _added_up(self, counts: str) -> dict[Any, int]:
        """The load runs' ``counts`` mappings (``codes``, ``by_version``...) added up, by key."""
        total: Counter[Any] = Counter()
        for r in self.loads.values():
            total.update(getattr(r, counts))
        return dict(sorted(total.items()))

    def load(self, label: str) -> Any:
        return self.loads[label]

    def per_load(self) -> dict[str, dict[str, Any]]:
        return {
            label: {
                "url": r.url,
                "requests": r.requests,
                "codes": {str(k): v for k, v in r.codes.items()},
                "non_2xx": r.non_2xx,
                "errors": dict(r.errors),
                "by_version": dict(r.by_version),
                "by_flags": dict(r.by_flags),
                "p50_ms": round(r.p50_ms, 3) if r.requests else None,
                "p99_ms": round(r.p99_ms, 3) if r.requests else None,
                "actual_qps": round(r.actual_qps, 2),
                "stopped_early": r.stopped_early,
            }
            for label, r in self.loads.items()
        }

    # ------------------------------------------------------------------ output
    def to_dict(self, *, include_fortio: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "backend": self.backend,
            "params": self.params,
            "started": self.started,
            "ended": self.ended,
            "interrupted": self.interrupted,
            "requests": self.requests,
            "codes": {str(k): v for k, v in self.codes.items()},
            "non_2xx": self.non_2xx,
            "by_version": self.by_version,
            "by_flags": self.by_flags,
            "per_load": self.per_load(),
            "steps": self.steps,
            "events": [e.to_dict() for e in self.events],
            "notes": self.notes,
            "extra": self.extra,
        }
        if include_fortio:
            out["loads"] = {label: r.to_fortio_json() for label, r in self.loads.items()}
        return json.loads(json.dumps(out, default=str))  # guarantee JSON-able

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, target)
        return target

    def verdict(self) -> str:
        errors = self.non_2xx
        share = 100.0 * errors / self.requests if self.requests else 0.0
        state = " (interrupted: partial results)" if self.interrupted else ""
        return (
            f"{self.scenario}{state}: {self.requests} requests, {errors} not 2xx ({share:.2f} %)"
            f", codes {self.codes}, versions {self.by_version}"
        )

    def summary(self) -> str:
        """A fortio-style report per load run, the steps, then the verdict."""
        parts = []
        for label, r in self.loads.items():
            parts.append(f"=== load {label}: {r.url}\n{r.summary()}")
        if self.steps:
            parts.append("=== steps")
            parts.extend("  " + _step_line(s) for s in self.steps)
        parts.extend(self.notes)
        for key, value in self.extra.items():
            parts.append(f"{key}: {value}")
        parts.append(self.verdict())
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.verdict()


def _step_line(step: dict[str, Any]) -> str:
    items = [f"{k}={v}" for k, v in step.items() if k not in ("t", "t_pushed", "t_end")]
    return ", ".join(items)
