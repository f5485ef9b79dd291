"""The lab's state directory removed under a running cluster (``rm -rf``, a tmp cleaner).

The lab cannot restart pods or reconfigure proxies without it, so it must say so once, in an
event naming the directory, refuse further calls with a ``LabError`` saying what to do, and
``close()`` must still stop every process.
"""

from __future__ import annotations

import shutil

import pytest
from reliability_testlib import APP, alive, eventually, manifest, one_replica

from lab_app.cluster.embedded import EmbeddedCluster
from lab_app.errors import LabError


async def test_state_dir_removed_is_reported_and_close_still_stops_everything() -> None:
    c = await EmbeddedCluster.start(sidecar_injection=False, crash_backoff_scale=0.05)
    pids: set[int] = set()
    try:
        await c.apply([manifest("configmap.yaml"), manifest("service.yaml"), one_replica()])
        await c.wait_rollout(APP, timeout=30)
        pids = set(c.processes().values())
        assert len(pids) == 4  # reaper, gateway, kube-proxy, one pod
        state_dir = c.state_dir
        shutil.rmtree(state_dir)

        def reported() -> list:
            return [e for e in c.events() if e.data.get("reason") == "StateDirRemoved"]

        event = (await eventually(reported, 10, message="an event about the state dir"))[0]
        assert str(state_dir) in event.message and event.obj == "cluster/embedded"
        with pytest.raises(LabError, match=f"state directory {state_dir} was removed") as err:
            await c.apply(manifest("deployment.yaml"))
        assert "close()" in str(err.value)
        with pytest.raises(LabError, match="state directory"):
            await c.scale(APP, 2)
        assert len(reported()) == 1  # said once, not at every controller pass
    finally:
        await c.close()
    await eventually(lambda: not alive(pids), 10, message="every lab process gone")
    assert not c.state_dir.exists()
