"""Request spans and the round trips on the critical path."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from falcoir.cluster import KubeGateway, Span, connect, critical_path
from falcoir.cluster.gateway import TRACE_ENV
from falcoir.core.gateway import PODS
from tests.cluster.fakeapi import FakeApi


def _s(start: float, end: float) -> Span:
    return Span("get", "x", start, end)


def test_critical_path_counts_only_requests_that_waited_for_another() -> None:
    assert critical_path([]) == 0
    assert critical_path([_s(0, 1)]) == 1
    assert critical_path([_s(0, 1), _s(0.1, 1.1), _s(0.2, 0.9)]) == 1  # all in flight
    assert critical_path([_s(0, 1), _s(1, 2), _s(2, 3)]) == 3  # one after the other
    # two chains: (0-1, 1-2) and (0-0.5, 0.6-1.5, 1.6-2.5): the longer one counts
    spans = [_s(0, 1), _s(1, 2), _s(0, 0.5), _s(0.6, 1.5), _s(1.6, 2.5)]
    assert critical_path(spans) == 3


def test_recording_keeps_every_request_span(api: FakeApi, gw: KubeGateway) -> None:
    api.latency = 0.05
    api.add_pod("prod", "web-1")
    api.logs[("prod", "web-1")] = b"line\n"
    gw.get(PODS, "web-1", "prod")  # not recorded yet
    assert gw.stats.spans is None and "critical_path" not in gw.stats.snapshot()
    gw.stats.record()
    gw.get(PODS, "web-1", "prod")
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: gw.list(PODS, "prod"), range(3)))
    gw.read_log("prod", "web-1", "app")
    snap = gw.stats.snapshot()
    assert snap["critical_path"] == 3  # get | 3 lists at once | log
    assert [s.verb for s in gw.stats.spans or []].count("list") == 3
    assert all(s.end - s.start >= 0.05 for s in gw.stats.spans or [])
    gw.stats.reset()
    assert gw.stats.spans == [] and gw.stats.snapshot()["critical_path"] == 0


def test_the_trace_file_gets_one_line_per_request(
    api: FakeApi, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    api.add_pod("prod", "web-1")
    gw = connect(str(kubeconfig))
    try:
        gw.get(PODS, "web-1", "prod")
        gw.list(PODS, "prod")
    finally:
        gw.close()
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(d["verb"], d["what"]) for d in lines] == [
        ("get", "get pods web-1 in namespace prod"),
        ("list", "list pods in namespace prod"),
    ]
    assert all(d["end"] >= d["start"] for d in lines)
