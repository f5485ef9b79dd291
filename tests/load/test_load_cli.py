"""``zdlab load`` as a learner runs it: fortio's flags, report, JSON, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from load_helpers import wait_until_sync

ZDLAB = [sys.executable, "-m", "lab_app.cli", "load"]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZDLAB, *args], capture_output=True, text=True, timeout=timeout)


def test_report_and_json_file(server, tmp_path):
    out = tmp_path / "result.json"
    proc = run_cli(server.url(), "-qps", "40", "-c", "2", "-t", "1s", "-json", str(out),
                   "-label", "cli test", "-p", "50,99")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("Starting at 40 qps with 2 thread(s)")
    assert "Code 200 : 40 (100.0 %)" in text
    assert "Sockets used: 2 (for perfect keepalive, would be 2)" in text
    assert "# target 50% " in text and "# target 99% " in text
    assert "All done 40 calls" in text
    doc = json.loads(out.read_text())
    assert doc["RetCodes"] == {"200": 40} and doc["Labels"] == "cli test"
    assert [p["Percentile"] for p in doc["DurationHistogram"]["Percentiles"]] == [50, 99]


def test_json_to_stdout_keeps_the_report_on_stderr(server):
    proc = run_cli(server.url(), "-qps", "0", "-n", "12", "-c", "3", "-json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["RetCodes"] == {"200": 12} and doc["Exactly"] == 12
    assert "All done 12 calls" in proc.stderr


def test_bad_input_exits_nonzero_with_a_clear_message_and_sends_nothing(server, tmp_path):
    before = server.count()
    for args, message in [
        (["-qps", "-5"], "qps: must be >= 0"),
        (["-t", "10x"], "duration: '10x' is not a duration"),
        (["-c", "0"], "c: number of connections must be >= 1"),
        (["-json", str(tmp_path / "no" / "such" / "dir.json")], "-json: directory"),
    ]:
        proc = run_cli(server.url(), *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_cli("localhost:8080")
    assert proc.returncode == 2 and "needs an http:// or https:// scheme" in proc.stderr
    assert server.count() == before


def test_ctrl_c_prints_the_partial_report_and_writes_the_json(server, tmp_path):
    out = tmp_path / "partial.json"
    before = server.count()
    proc = subprocess.Popen(
        [*ZDLAB, server.url(), "-qps", "50", "-c", "2", "-t", "30s", "-json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_sync(lambda: server.count() - before >= 20, 15, "20 requests from the CLI")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr  # a partial run: 128 + SIGINT
    assert "interrupted" in stderr
    assert "All done" in stdout and "Code 200 :" in stdout
    doc = json.loads(out.read_text())
    assert doc["zdlab"]["stopped_early"] is True
    assert 20 <= doc["RetCodes"]["200"] < 1500
