"""The node: the pods it runs, how each is created, and the recently deleted ones.

``pods.Pod`` is one pod's lifecycle; ``Kubelet`` is the set of them. It decides what the
Deployment controller's new pods get -- a sidecar or not (the pod's own
``sidecar.istio.io/inject``, then the cluster's ``sidecar_injection`` option, then the
Namespace label ``istio-injection=enabled``), native or classic (the pod's annotation, the
mesh's ``sidecar_mode``, the versions' default), their env from the applied ConfigMaps -- and
keeps deleted pods a while (``GRAVEYARD_SIZE``) so ``pod(name)``, ``logs()`` and the events
can still name them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_app.cluster.base import PodInfo
from lab_app.cluster.embedded.deployments import Deployment, ReplicaSet
from lab_app.cluster.embedded.endpoints import matches
from lab_app.cluster.embedded.options import ClusterOptions
from lab_app.cluster.embedded.podenv import resolve_env
from lab_app.cluster.embedded.pods import Pod
from lab_app.cluster.embedded.procs import Reaper
from lab_app.cluster.embedded.specs import PodTemplate
from lab_app.cluster.embedded.store import Store
from lab_app.errors import ConfigError, NotFoundError

GRAVEYARD_SIZE = 200
Emit = Callable[..., Any]


@dataclass(kw_only=True, eq=False, repr=False)
class Kubelet:
    """The live pods by name (``pods``) and the last deleted ones (``graveyard``)."""

    options: ClusterOptions
    store: Store
    emit: Emit
    on_change: Callable[[], None]
    pods: dict[str, Pod] = field(default_factory=dict, init=False)
    graveyard: OrderedDict[str, Pod] = field(default_factory=OrderedDict, init=False)
    state_dir: Path = field(default_factory=Path, init=False)
    reaper: Reaper | None = field(default=None, init=False)

    def find(self, name: str) -> Pod | None:
        """A live pod, else a recently deleted one."""
        return self.pods.get(name) or self.graveyard.get(name)

    def pod(self, name: str) -> Pod:
        pod = self.find(name)
        if pod is None:
            raise NotFoundError(f"pod/{name} not found")
        return pod

    async def logs(self, name: str, tail: int | None = None, previous: bool = False) -> str:
        """The app container's log; ``previous``: the container before the last restart."""
        p = self.pod(name)
        restart = p.restarts - 1 if previous else None
        if previous and p.restarts == 0:
            raise ConfigError(f"pod/{name} has no previous container (no restart yet)")
        text = await asyncio.to_thread(_read_text, p.log_path(restart))
        if tail is not None:
            lines = text.splitlines()
            text = "\n".join(lines[-tail:]) + ("\n" if lines else "")
        return text

    def infos(self, selector: Mapping[str, str] | None = None) -> list[PodInfo]:
        pods = sorted(self.pods.values(), key=lambda p: p.created)
        return [p.info() for p in pods if not selector or matches(selector, p.labels)]

    def inject(self, template: PodTemplate) -> bool:
        """Does a pod of ``template`` get an ``istio-proxy`` sidecar?"""
        own = template.sidecar_injection()
        if own is not None:
            return own
        if self.options.sidecar_injection is not None:
            return self.options.sidecar_injection
        return self.store.namespace_labels.get("istio-injection") == "enabled"

    def sidecar_mode(self, template: PodTemplate) -> str:
        """native | classic: the pod's ``sidecar.istio.io/nativeSidecar`` annotation, then the
        cluster's ``sidecar_mode``, then the versions' default (ENABLE_NATIVE_SIDECARS=auto)."""
        annotation = template.annotations.get("sidecar.istio.io/nativeSidecar")
        return self.options.versions.sidecar_mode(annotation, mesh=self.options.sidecar_mode)

    def create_pod(self, dep: Deployment, rs: ReplicaSet) -> Pod:
        """The Deployment controller's pod creation: a new name, then the pod starts."""
        name = rs.new_pod_name({**self.pods, **self.graveyard})
        pod = Pod(
            name=name,
            template=rs.template,
            image=rs.image,
            deployment=dep.name,
            rs_hash=rs.hash,
            workdir=self.state_dir / "pods" / name,
            options=self.options.kubelet,
            emit=self.emit,
            on_change=self.on_change,
            env_resolver=self._resolve_env,
            reaper=self.reaper,
            inject_sidecar=self.inject(rs.template),
            sidecar_mode=self.sidecar_mode(rs.template),
            minimum_grace_period=self.options.versions.minimum_grace_period,
        )
        self.pods[name] = pod
        pod.start()
        return pod

    def delete_pod(self, pod: Pod) -> None:
        pod.terminate()

    def _resolve_env(self, pod: Pod) -> dict[str, str]:
        return resolve_env(pod, self.store.configmaps(), self.options.namespace)

    def wake_all(self) -> None:
        """A ConfigMap changed: a pod waiting for it (CreateContainerConfigError) retries now."""
        for pod in self.pods.values():
            pod.wake()

    def prune(self) -> None:
        """Move the pods whose deletion finished to the graveyard (bounded)."""
        for name, pod in list(self.pods.items()):
            if pod.deleted:
                del self.pods[name]
                self.graveyard[name] = pod
                while len(self.graveyard) > GRAVEYARD_SIZE:
                    self.graveyard.popitem(last=False)

    async def kill_all(self) -> None:
        """``close()``: SIGKILL every pod and its sidecar, no hooks."""
        pods = list(self.pods.values())
        await asyncio.gather(*(p.kill() for p in pods), return_exceptions=True)

    def processes(self) -> dict[str, int]:
        """Pids of the pods' app containers and sidecar Envoys."""
        out: dict[str, int] = {}
        for name, pod in self.pods.items():
            if pod.proc is not None and pod.proc.returncode is None:
                out[f"pod/{name}"] = pod.proc.pid
            if pod.sidecar is not None and pod.sidecar.alive and pod.sidecar.envoy is not None:
                out[f"pod/{name}-sidecar"] = pod.sidecar.envoy.pid or 0
        return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
