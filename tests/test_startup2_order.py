"""The start of the one-shot commands: input, then the cluster, then locate's first
request, and only then what comes after locate (the orchestrator, the live view, the
collection, the bundle, containment), imported while that request is on the wire.

Each command runs as a subprocess (``python -c WRAPPER``) against a plain-HTTP fake API
server; an audit hook writes down every module loaded, by any thread, at the moment the
first HTTP request is sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.api404 import not_found_api

ROOT = Path(__file__).resolve().parents[1]
ALERT = (
    "17:02:06.572 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=623)"
)
K8S_ALERT = (
    "17:02:06.572 - Critical - Suspicious crypto miner process (name=xmrig, pid=623, "
    "k8s.ns.name=prod, k8s.pod.name=web-1)"
)

WRAPPER = """
import json, os, sys
sends = []
def hook(event, args):
    if event == "http.client.send" and len(sends) < 12:
        line = bytes(args[1][:200]).split(b"\\r\\n", 1)[0].decode(errors="replace")
        if not line.endswith(" HTTP/1.1"):
            return  # a body
        sends.append({"request": line, "modules": sorted(sys.modules)})
        with open(os.environ["STARTUP2_OUT"], "w") as fh:
            json.dump(sends, fh)
sys.addaudithook(hook)
import runpy
sys.argv = ["falcoir", *sys.argv[1:]]
runpy.run_module("falcoir", run_name="__main__", alter_sys=True)
"""
"""Writes the first requests sent (their request line), each with every module loaded
(by any thread) when it was sent."""

WHOAMI = "POST /apis/authentication.k8s.io/v1/selfsubjectreviews"
"""respond asks who we are alongside locate's first request, at the same moment."""
ACCESS_REVIEW = "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
"""... and, once an answer is in, its cluster-wide permission questions."""

AFTER_LOCATE = {
    # respond
    "falcoir.core.respond.orchestrator",
    "falcoir.core.respond.graph",
    "falcoir.core.respond.follow",
    "falcoir.render.respond",
    "falcoir.core.report",
    # collect, the bundle, containment
    "falcoir.core.collect",
    "falcoir.core.collect.engine",
    "falcoir.core.bundle",
    "falcoir.core.contain",
    "falcoir.core.contain.policy",
    "bagit",
    "rich",
    # locate's own, used only after its first answer
    "falcoir.core.locate.scan",
    "falcoir.core.locate.known",
    "falcoir.core.cgroup",
    "secrets",
}
"""Not loaded, by any thread, when the first request is sent."""


_REQUESTS: list[list[str]] = []
"""The module's server's request list (one server per module, cleared per test)."""


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kubeconfig for a plain-HTTP 'API server' answering 404 to everything."""
    with not_found_api(tmp_path_factory.mktemp("startup2")) as (path, requests):
        _REQUESTS.append(requests)
        yield path
        _REQUESTS.remove(requests)


def _requests() -> list[str]:
    return _REQUESTS[-1]


def _run(
    kubeconfig: Path, argv: list[str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]] | None]:
    _requests().clear()
    out = tmp_path / "first-request.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "FALCOIR_HOME": str(tmp_path / "falcoir-home"),
        "KUBECONFIG": str(kubeconfig),
        "STARTUP2_OUT": str(out),
    }
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    return proc, (json.loads(out.read_text()) if out.exists() else None)


POD_GET = "GET /api/v1/namespaces/prod/pods/web-1"
FALCO_PODS = "GET /api/v1/pods?"


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (["respond", ALERT, "--yes", "-o", "json"], FALCO_PODS),
        (["respond", K8S_ALERT, "--yes", "-o", "json"], POD_GET),
        (["respond", ALERT, "--dry-run", "-o", "json"], FALCO_PODS),
        (["collect", ALERT, "-o", "json"], FALCO_PODS),
        (["collect", "--pod", "prod/web-1", "-o", "json"], POD_GET),
        (["locate", ALERT, "-o", "json"], FALCO_PODS),
    ],
    ids=[
        "respond-yes",
        "respond-k8s-fields",
        "respond-dry-run",
        "collect",
        "collect-pod",
        "locate",
    ],
)
def test_first_request_before_what_comes_after_locate(
    kubeconfig: Path, tmp_path: Path, argv: list[str], first: str
) -> None:
    if argv[0] in ("respond", "collect"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    proc, seen = _run(kubeconfig, argv, tmp_path)
    assert proc.returncode == 5, proc.stderr[-2000:]  # the 404 API: not found
    assert seen is not None, proc.stderr[-2000:]
    # locate's own request leads (who we are may be asked at the same moment)
    lines = [s["request"] for s in seen]
    at = next((i for i, line in enumerate(lines) if line.startswith(first)), None)
    assert at is not None, lines
    assert all(line.startswith((WHOAMI, ACCESS_REVIEW)) for line in lines[:at]), lines
    modules = set(seen[at]["modules"])
    assert {"falcoir.cluster.gateway", "falcoir.core.locate.engine"} <= modules
    early = modules & AFTER_LOCATE
    assert not early, f"imported before the first request: {sorted(early)}"
    if "--pod" in argv:
        assert "falcoir.core.alert" not in modules  # nothing to parse
    if argv[0] == "respond":
        # ... and they were imported afterwards: the orchestrator ran the steps.
        doc = json.loads(proc.stdout)
        assert doc["failed_step"] == "locate"
        assert doc["error"]["exit_code"] == 5
        steps = {s["name"]: s for s in doc["steps"]}
        assert steps["locate"]["status"] == "failed"
        assert steps["owners"]["status"] == "skipped"


@pytest.mark.parametrize(
    "argv",
    [
        ["respond", "this is not a Falco alert", "--yes", "-o", "json"],
        ["respond", "--yes", "-o", "json"],
        ["collect", "not an alert either", "-o", "json"],
        ["collect", "--pod", "Bad_Namespace/web-1", "-o", "json"],
        ["collect", "--pod", "prod/Web_1", "-o", "json"],
        ["locate", "garbage", "-o", "json"],
        ["locate", "--pod", "a/b/c", "-o", "json"],
    ],
)
def test_bad_input_exits_2_without_a_request(
    kubeconfig: Path, tmp_path: Path, argv: list[str]
) -> None:
    proc, seen = _run(kubeconfig, argv, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert seen is None and _requests() == []
    assert proc.stdout == ""
    assert "error:" in proc.stderr


@pytest.mark.parametrize("command", ["respond", "collect", "locate"])
def test_bad_kubeconfig_is_reported_as_such(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": []}))
    argv = [command, ALERT, "-o", "json", *(["--yes"] if command == "respond" else [])]
    proc, seen = _run(bad, argv, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert seen is None
    assert f"kubeconfig {bad} sets no current-context" in proc.stderr
    assert proc.stdout == ""


def test_unreachable_cluster_exits_3(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "t", "user": {"token": "t"}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )
    proc, _ = _run(kc, ["respond", K8S_ALERT, "--yes", "-o", "json"], tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["failed_step"] == "locate"
    assert doc["error"]["type"] == "ClusterUnreachable"
