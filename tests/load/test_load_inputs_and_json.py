"""Bad input fails before any request; results read and write fortio's JSON."""

from __future__ import annotations

import asyncio
import json

import pytest

from lab_app.errors import ConfigError
from lab_app.load import (
    ERROR_CLASSES,
    LoadResults,
    make_options,
    parse_duration,
    run_load,
    start_load,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qps": -1}, "qps"),
        ({"qps": "fast"}, "qps"),
        ({"c": 0}, "c: number of connections"),
        ({"c": 2.5}, "c: expected a whole number"),
        ({"n": -3}, "n: number of calls"),
        ({"duration": "10x"}, "duration: '10x' is not a duration"),
        ({"duration": -1}, "duration"),
        ({"timeout": "0s"}, "timeout: must be > 0"),
        ({"percentiles": "50,abc"}, "percentiles: 'abc'"),
        ({"percentiles": "50,150"}, "percentiles: 150"),
        ({"percentiles": ""}, "percentiles: no percentile"),
        ({"engine": "curl"}, "engine"),
        ({"headers": {"bad name": "x"}}, "headers"),
    ],
)
async def test_bad_parameters_fail_before_any_request(server, kwargs, message):
    before = await asyncio.to_thread(server.count)
    with pytest.raises(ConfigError, match=message):
        start_load(server.url(), **{"duration": 1, **kwargs})
    assert await asyncio.to_thread(server.count) == before
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://127.0.0.1/", "http://", "http://:80/", "http://h:99999/", ""]
)
def test_malformed_urls(url):
    with pytest.raises(ConfigError, match="url"):
        make_options(url)


def test_non_loopback_hosts_are_not_blocked_by_the_library():
    # a real cluster's gateway IP must work; nothing is sent here, only validated
    assert make_options("http://10.96.0.10:80/k8s/demo").target.host == "10.96.0.10"
    assert make_options("https://gateway.example/").resolved_engine == "httpx"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("500ms", 0.5), ("1m30s", 90), ("2", 2), (1.5, 1.5), ("0", 0)],
)
def test_fortio_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_start_load_outside_a_loop_says_what_to_do(server):
    with pytest.raises(ConfigError, match="run_load"):
        start_load(server.url(), duration=1)


def test_run_load_for_scripts(server):
    results = run_load(server.url(), qps=50, c=2, duration=0.5, uniform=True)
    assert results.requests == 25 and results.codes == {200: 25}


FORTIO_FIELDS = {
    "RunType": str,
    "Labels": str,
    "StartTime": str,
    "RequestedQPS": str,
    "RequestedDuration": str,
    "ActualQPS": float,
    "ActualDuration": int,
    "NumThreads": int,
    "Version": str,
    "DurationHistogram": dict,
    "ErrorsDurationHistogram": dict,
    "Exactly": int,
    "Jitter": bool,
    "Uniform": bool,
    "NoCatchUp": bool,
    "RetCodes": dict,
    "Sizes": dict,
    "HeaderSizes": dict,
    "Sockets": list,
    "SocketCount": int,
    "URL": str,
    "NumConnections": int,
}
HISTOGRAM_FIELDS = {"Count", "Min", "Max", "Sum", "Avg", "StdDev", "Data", "Percentiles"}


async def test_fortio_json_fields_types_and_round_trip(make_server, tmp_path):
    srv = make_server("v3")
    results = await start_load(srv.url("/mix"), qps=100, c=2, duration=1, label="mix run")
    doc = json.loads(json.dumps(results.to_fortio_json()))
    for name, kind in FORTIO_FIELDS.items():
        assert isinstance(doc[name], kind), (name, doc[name])
    assert doc["RunType"] == "HTTP" and doc["Labels"] == "mix run"
    assert doc["RequestedQPS"] == "100" and doc["RequestedDuration"] == "1s"
    assert doc["RetCodes"] == {"200": 50, "503": 50}
    assert doc["NumThreads"] == doc["NumConnections"] == 2 and doc["SocketCount"] == 2
    assert 0.9e9 < doc["ActualDuration"] < 2e9
    hist = doc["DurationHistogram"]
    assert set(hist) == HISTOGRAM_FIELDS and hist["Count"] == 100
    assert [p["Percentile"] for p in hist["Percentiles"]] == [50, 75, 90, 99, 99.9]
    assert hist["Data"][-1]["Percent"] == pytest.approx(100.0)
    assert sum(b["Count"] for b in hist["Data"]) == 100
    assert doc["ErrorsDurationHistogram"]["Count"] == 50
    assert doc["StartTime"][:4].isdigit() and "T" in doc["StartTime"]
    extra = doc["zdlab"]
    assert extra["by_version"] == {"v3": 100} and extra["non_2xx"] == 50
    assert set(extra["errors"]) == set(ERROR_CLASSES)
    assert {"reset_reused", "cancelled"} <= set(ERROR_CLASSES)
    assert len(extra["timeline"]) >= 1 and "max_ms" in extra["loop_lag"]

    path = results.save_json(tmp_path / "run.json")
    again = LoadResults.from_fortio_json(path)
    assert json.loads(json.dumps(again.to_fortio_json())) == doc
    assert again.codes == results.codes and again.non_2xx == 50
    assert again.p99_ms == pytest.approx(results.p99_ms)
    assert again.summary() == results.summary()
    assert again.timeline(as_frame=True)["code_503"].sum() == 50


def test_reads_a_plain_fortio_json_without_the_extras():
    doc = {
        "RunType": "HTTP",
        "Labels": "",
        "StartTime": "2024-05-01T10:00:00.123456789Z",
        "RequestedQPS": "8",
        "RequestedDuration": "5s",
        "ActualQPS": 7.99,
        "ActualDuration": 5004000000,
        "NumThreads": 4,
        "DurationHistogram": {
            "Count": 40,
            "Min": 0.001,
            "Max": 0.01,
            "Sum": 0.1,
            "Avg": 0.0025,
            "StdDev": 0.001,
            "Data": [{"Start": 0.001, "End": 0.01, "Percent": 100, "Count": 40}],
            "Percentiles": [{"Percentile": 99, "Value": 0.009}],
        },
        "RetCodes": {"200": 38, "-1": 2},
        "Sockets": [1, 1, 1, 2],
    }
    results = LoadResults.from_fortio_json(json.dumps(doc))
    assert results.requests == 40 and results.non_2xx == 2 and results.socket_count == 5
    assert results.requested_duration == 5 and results.p99_ms == pytest.approx(9.0)
    assert "Code  -1 : 2 (5.0 %)" in results.summary()


@pytest.mark.parametrize("bad", ['{"RunType": "TCP"}', '{"RunType": "HTTP"}', "not json at all {"])
def test_bad_fortio_json(bad, tmp_path):
    with pytest.raises(ConfigError, match="fortio JSON"):
        LoadResults.from_fortio_json(bad if bad.startswith("{") else tmp_path / "missing.json")
