"""One lab in its own process, like one notebook kernel: used by test_two_labs.py.

Starts an embedded cluster with the Istio manifests (one replica, with its sidecar), prints
one JSON line describing it, then closes the cluster when a line arrives on stdin.
"""

from __future__ import annotations

import asyncio
import json
import sys

from reliability_testlib import APP, ISTIO, manifest, one_replica

from lab_app.cluster.embedded import EmbeddedCluster


async def main() -> None:
    c = await EmbeddedCluster.start(crash_backoff_scale=0.05, propagation_delay=0.3)
    try:
        for name in ISTIO:
            await c.apply(one_replica() if name == "deployment.yaml" else manifest(name))
        await c.wait_rollout(APP, timeout=90)
        await c.config_settled()
        info = {
            "state_dir": str(c.state_dir),
            "gateway": c.gateway_url(),
            "service": c.service_url(),
            "processes": c.processes(),
        }
        print(json.dumps(info), flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await c.close()
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
