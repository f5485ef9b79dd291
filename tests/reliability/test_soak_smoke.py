"""``bench/soak.py`` in miniature: it runs, reports every lab process, and leaves nothing.

The real soak (10 minutes at 200 qps) is run by hand; this keeps the script working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reliability_testlib import ROOT


def test_soak_script_reports_and_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.2", "--qps", "50",
         "--step-seconds", "2", "--segment-seconds", "4", "--warmup", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["requests"] >= 300 and report["non_2xx"] == 0, report
    assert set(report["versions"]) == {"v1", "v2"}  # the weights did move traffic
    assert report["weight_changes"] >= 3
    names = [row["process"] for row in report["processes"]]
    # reaper, gateway, kube-proxy, 4 pods, 4 sidecars, and the load generator itself
    assert len(names) == 12 and sum(n.endswith("-sidecar") for n in names) == 4, names
    assert all(row["rss_end_mib"] > 0 and row["fds_end"] > 0 for row in report["processes"])
    assert report["leftover_processes"] == []
    assert "processes left running after close(): 0" in run.stdout
