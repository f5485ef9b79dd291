"""/k8s/memoryleak without a memory limit: it stops growing at its safety cap and says so.

No self-kill by default (a process that SIGKILLs itself is reason ``Error`` on a node, not
``OOMKilled``), so a service run with no memory limit must not eat the machine.
"""

from __future__ import annotations

import httpx
import pytest

from lab_app.service import faults
from lab_app.service.app import create_app
from lab_app.service.config import ServiceConfig
from lab_app.service.faults import MemoryLeak, rss_mib
from tests.helpers import eventually, wait_until

BASE = ServiceConfig(pod_name="test-pod", enable_fault_endpoints=True)


def test_the_leak_stops_at_its_cap_without_killing_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kills: list[tuple[float, int]] = []
    cap = int(rss_mib()) + 24  # a few chunks above where this process is now
    leak = MemoryLeak(on_oom=lambda rss, limit: kills.append((rss, limit)), cap_mib=cap)
    assert leak.limit_mib is None and leak.start()
    wait_until(lambda: leak.capped, 10, message="the leak capped")
    assert not kills  # no MEMORY_LIMIT_MB: never a self-kill
    assert rss_mib() <= cap + faults.CHUNK_MIB
    assert "zdlab-service leak-capped" in capsys.readouterr().err


async def test_the_endpoint_answers_500_once_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "LEAK_CAP_MIB", int(rss_mib()) + 24)
    app = create_app(BASE)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
        first = await c.get("/k8s/memoryleak")
        assert first.status_code == 200
        assert "until the memory limit kills it" in first.text

        async def capped() -> httpx.Response | None:
            r = await c.get("/k8s/memoryleak")
            return r if r.status_code != 200 else None

        r = await eventually(capped, 10, message="the leak reached its cap")
    assert r.status_code == 500 and "no memory limit stopped it" in r.text
