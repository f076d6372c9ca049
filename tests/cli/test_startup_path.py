"""What the hot commands load before their first API request, and the prefetch that
imports the rest while they wait for the answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.core.prefetch import Prefetch
from tests.plugins.api404 import not_found_api

ROOT = Path(__file__).resolve().parents[2]
ALERT = (
    "17:02:06.572 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=623)"
)

WRAPPER = """
import json, os, sys, threading
seen = []
elsewhere = set()
def hook(event, args):
    if event == "import" and threading.current_thread() is not threading.main_thread():
        elsewhere.add(args[0])
    if event == "http.client.send" and not seen:
        seen.append(sorted(sys.modules))
        with open(os.environ["MODULES_OUT"], "w") as fh:
            json.dump({"modules": seen[0], "elsewhere": sorted(elsewhere)}, fh)
sys.addaudithook(hook)
import runpy
sys.argv = ["falcoir", *sys.argv[1:]]
runpy.run_module("falcoir", run_name="__main__", alter_sys=True)
"""
"""Writes the modules loaded when the first request leaves, and those imported by
threads other than the main one (read-ahead of the backend: not on the way there)."""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A plain-HTTP 'API server' answering 404 to everything, and its kubeconfig."""
    with not_found_api(tmp_path_factory.mktemp("home")) as (kubeconfig, _):
        yield kubeconfig


def _modules_at_first_request(kubeconfig: Path, argv: list[str]) -> tuple[int, set[str], str]:
    out = kubeconfig.parent / "modules.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(kubeconfig.parent),
        "KUBECONFIG": str(kubeconfig),
        "MODULES_OUT": str(out),
    }
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=kubeconfig.parent,
    )
    assert out.exists(), proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    # What a background thread imported did not hold the first request up... much.
    return proc.returncode, set(doc["modules"]) - set(doc["elsewhere"]), proc.stderr


# respond's backend imports the permission table (falcoir.core.rbac, small) with
# itself: it asks the cluster-wide questions as soon as the API server has answered.
RESPOND_LOADS = {"falcoir.core.rbac"}
NOT_BEFORE_FIRST_REQUEST = {
    "pydantic",
    "kubernetes",
    "rich",
    "bagit",
    "falcoir.core.bundle",
    "falcoir.core.collect",
    "falcoir.core.contain",
    "falcoir.core.report",
    "falcoir.core.rbac",
    "falcoir.cli.bundle",
    "falcoir.cli.lab",
    "falcoir.lab",
}


@pytest.mark.parametrize(
    "argv",
    [
        ["respond", ALERT, "--yes", "-o", "json"],
        ["respond", ALERT, "--dry-run", "-o", "json"],
        ["collect", ALERT, "-o", "json"],
        ["locate", ALERT, "-o", "json"],
        ["quarantine", ALERT, "--yes", "-o", "json"],
        ["delete", ALERT, "--yes", "-o", "json"],
    ],
    ids=lambda a: " ".join([a[0], *a[2:]]),
)
def test_nothing_heavy_before_the_first_request(api: Path, argv: list[str], tmp_path: Path) -> None:
    if argv[0] in ("respond", "collect"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    code, modules, stderr = _modules_at_first_request(api, argv)
    assert code == 5, stderr[-2000:]  # the 404 API: pod not found
    assert "falcoir.cluster.gateway" in modules and "falcoir.core.locate" in modules
    forbidden = NOT_BEFORE_FIRST_REQUEST - (RESPOND_LOADS if argv[0] == "respond" else set())
    assert not modules & forbidden, modules & forbidden
    assert not [m for m in modules if m.startswith("pydantic")]


# -- Prefetch --------------------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes_received = 0


class _Gateway:
    def __init__(self) -> None:
        self.stats = _Stats()


def test_prefetch_waits_for_the_first_answer() -> None:
    gateway = _Gateway()
    modules = ["json", "falcoir.no_such_module_here", "colorsys"]
    before = sys.getswitchinterval()
    prefetch = Prefetch(modules, gateway).start()
    gateway.stats.requests = 1
    time.sleep(0.05)
    assert prefetch.imported == []  # no answer yet: nothing imported
    gateway.stats.bytes_received = 120
    prefetch.wait()
    assert prefetch.imported == ["json", "colorsys"]  # the failing one is skipped
    assert sys.getswitchinterval() == before


def test_prefetch_without_stats_starts_at_once() -> None:
    prefetch = Prefetch(["json"], object()).start()
    prefetch.wait()
    assert prefetch.imported == ["json"]


def test_prefetch_gives_up_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    import falcoir.core.prefetch as mod

    monkeypatch.setattr(mod, "START_WAIT_S", 0.05)
    prefetch = Prefetch(["json"], _Gateway()).start()
    prefetch.wait()
    assert prefetch.imported == ["json"]


def test_wait_before_start_returns() -> None:
    Prefetch(["json"]).wait()


def test_prefetch_calls_first_once_the_first_answer_is_in() -> None:
    # respond's backend sends its cluster-wide questions through it: not before the
    # first answer (they would hold up locate's first request), then at once.
    gateway = _Gateway()
    asked: list[list[str]] = []
    prefetch = Prefetch(["colorsys"], gateway, first=lambda: asked.append(list(prefetch.imported)))
    prefetch.start()
    time.sleep(0.05)
    assert asked == []
    gateway.stats.bytes_received = 64
    prefetch.wait()
    assert asked == [[]]  # called once, before anything was imported
    assert prefetch.imported == ["colorsys"]
