"""``kubectl set image`` / ``scale`` / ``rollout status`` on the embedded Deployments.

``set_image`` and ``scale`` are edits of a copy of the Deployment's manifest that
``staging.Stager.update_deployment`` then applies like a new version of it (so a new pod
template starts a rolling update, exactly as ``kubectl`` does); the edits are here, with the
message ``wait_rollout`` gives when a rollout does not complete, saying which pods hold it up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab_app.cluster.embedded.deployments import Deployment
from lab_app.errors import ConfigError, NotFoundError, RolloutTimeoutError

Change = Callable[[Deployment, dict[str, Any]], None]


def image_change(deployment: str, image: str, container: str | None) -> Change:
    """Set the (only) container's image; ``container``, if given, must be its name."""

    def change(dep: Deployment, raw: dict[str, Any]) -> None:
        current = dep.spec.template.container.name
        if container is not None and container != current:
            raise NotFoundError(
                f"deployment/{deployment} has no container {container!r} (it has {current!r})"
            )
        raw["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return change


def replicas_change(replicas: int) -> Change:
    """Set ``spec.replicas`` (an integer >= 0, checked now)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ConfigError(f"replicas must be an integer >= 0, got {replicas!r}")

    def change(dep: Deployment, raw: dict[str, Any]) -> None:
        raw["spec"]["replicas"] = replicas

    return change


def rollout_timeout(dep: Deployment, timeout: float) -> RolloutTimeoutError:
    """What ``kubectl rollout status`` would say, plus the pods that are not ready and why."""
    s = dep.status()
    problems = [
        f"{p.name}: {p.reason or p.phase}"
        for p in dep.all_pods()
        if not p.ready and not p.terminating
    ]
    return RolloutTimeoutError(
        f"deployment/{dep.name}: rollout not complete after {timeout:g}s: "
        f"{s['updated']} of {s['replicas']} updated, {s['updated_available']} available, "
        f"{s['current']} current" + (f"; not ready: {', '.join(problems)}" if problems else "")
    )
