"""Pod logs for the fake API server: ``GET /api/v1/namespaces/NS/pods/NAME/log``.

kube-apiserver forwards a log request to the pod's kubelet and answers with its text, or
with the kubelet's error as a ``400 BadRequest`` Status: no container named when the pod
has several ("a container name must be specified for pod P, choose one of: [...]"), an
unknown container ("container C is not valid for pod P"), and ``previous=true`` when the
container's status has no ``lastState.terminated`` with a containerID (kubelet's
``kuberuntime_container.go``: "previous terminated container "C" in pod "P" not found").
``tailLines`` keeps the last lines. A missing pod is the store's ordinary 404.
"""

from __future__ import annotations

from typing import Any

from kube_apiserver import Reply

Key = tuple[str, str, str]  # namespace, pod, container ("" = the pod's first)


def bad_request(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


class PodLogs:
    """What each container has logged, set by tests playing the kubelet."""

    def __init__(self) -> None:
        self._logs: dict[Key, dict[str, str]] = {}

    def set(
        self,
        pod: str,
        text: str,
        *,
        container: str = "",
        previous: str | None = None,
        namespace: str = "zdlab",
    ) -> None:
        """``text`` is the current log; ``previous`` that of the container before the last
        restart, served only while the pod's status says one terminated."""
        entry = {"current": text}
        if previous is not None:
            entry["previous"] = previous
        self._logs[(namespace, pod, container)] = entry

    def forget(self, namespace: str) -> None:
        self._logs = {k: v for k, v in self._logs.items() if k[0] != namespace}

    def answer(self, namespace: str, pod: dict[str, Any], query: dict[str, str]) -> Reply:
        """The log request's answer for ``pod`` (a stored Pod object)."""
        name = pod["metadata"]["name"]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        wanted = query.get("container", "")
        if not wanted:
            if len(containers) != 1:
                return Reply(400, bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]"
                ))  # fmt: skip
            wanted = containers[0]
        elif wanted not in containers:
            return Reply(400, bad_request(f"container {wanted} is not valid for pod {name}"))
        logs = (
            self._logs.get((namespace, name, wanted))
            or self._logs.get((namespace, name, ""))
            or {"current": ""}
        )
        text = logs["current"]
        if query.get("previous") in ("true", "1"):
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            last = next((s.get("lastState") or {} for s in statuses if s.get("name") == wanted), {})
            if not (last.get("terminated") or {}).get("containerID"):
                return Reply(400, bad_request(
                    f'previous terminated container "{wanted}" in pod "{name}" not found'
                ))  # fmt: skip
            text = logs.get("previous", "")
        if query.get("tailLines"):
            tail = int(query["tailLines"])
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail else ""
        return Reply(200, text)
