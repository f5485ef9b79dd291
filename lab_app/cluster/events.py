"""The timestamped events both backends emit, so charts and tests can mark them.

Timestamps are wall-clock seconds (``time.time()``), the same clock the load
generator stamps its requests with, so an event can be drawn on a load chart.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    POD_CREATED = "PodCreated"
    POD_STARTED = "PodStarted"  # the container's process is running
    POD_READY = "PodReady"  # readiness probe passed
    POD_NOT_READY = "PodNotReady"
    POD_TERMINATING = "PodTerminating"  # deletion started (endpoint removal starts too)
    PRESTOP_STARTED = "PreStopStarted"
    PRESTOP_FINISHED = "PreStopFinished"
    SIGTERM = "SIGTERM"
    SIGKILL = "SIGKILL"
    OOM_KILLED = "OOMKilled"
    CONTAINER_EXITED = "ContainerExited"
    RESTARTED = "Restarted"
    POD_DELETED = "PodDeleted"
    PROBE_FAILED = "ProbeFailed"
    ENDPOINT_ADDED = "EndpointAdded"
    ENDPOINT_REMOVED = "EndpointRemoved"
    CONFIG_PUSHED = "ConfigPushed"  # a proxy accepted new config
    CONFIG_REJECTED = "ConfigRejected"
    CONFIG_WARNING = "ConfigWarning"  # accepted but suspect: IST0101, a deprecated API
    WEIGHTS_CHANGED = "WeightsChanged"
    ROLLOUT_STARTED = "RolloutStarted"
    ROLLOUT_COMPLETE = "RolloutComplete"
    SCALED = "Scaled"
    PROXY_CRASHED = "ProxyCrashed"
    PROXY_RESTARTED = "ProxyRestarted"
    SIDECAR_DRAIN_STARTED = "SidecarDrainStarted"
    SIDECAR_EXITED = "SidecarExited"
    DECISION = "Decision"  # progressive delivery: promote / hold / rollback
    NOTE = "Note"  # anything a caller adds by hand


@dataclass(frozen=True)
class Event:
    """One thing that happened, at wall-clock time ``t``, to object ``obj``."""

    kind: str
    obj: str
    message: str = ""
    t: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(self.t)) + f".{int(self.t * 1000) % 1000:03d}"
        )
        return f"{stamp} {self.kind:<18} {self.obj} {self.message}".rstrip()
