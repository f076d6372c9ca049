"""The lab's ``exec_drop`` fault cuts exec streams mid-way, and falcoir's collect records
such a stream as dropped (retried, then failed) instead of taking it for evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.lab import Lab, falcoir_env, start_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def drop_lab() -> Iterator[Lab]:
    """A lab of its own: its faults must not disturb other tests."""
    with start_lab() as lab:
        lab.client.create(
            "pods",
            {
                "metadata": {"name": "victim"},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "ubuntu:latest", "command": ["sleep", "3600"]}
                    ]
                },
            },
            "default",
        )
        lab.client.wait_for(
            "pods", "victim", "default", lambda p: p["status"].get("phase") == "Running"
        )
        yield lab


def test_exec_drop_cuts_kubectl_exec_midway(drop_lab: Lab) -> None:
    try:
        drop_lab.set_faults(exec_drop=1.0)
        res = drop_lab.kubectl("exec", "victim", "--", "sh", "-c", "seq 1 200000")
        # Some output came through, then the stream died without an exit status.
        assert res.returncode != 0
        assert res.stdout.startswith("1\n2\n") and not res.stdout.endswith("200000\n")
        assert "command terminated" not in res.stderr
        assert "close 1006" in res.stderr or "unexpected EOF" in res.stderr, res.stderr
        # A command with no output loses its status instead.
        silent = drop_lab.kubectl("exec", "victim", "--", "true")
        assert silent.returncode != 0 and "unexpected EOF" in silent.stderr
        # Plain requests are untouched by exec_drop.
        assert drop_lab.kubectl("get", "pod", "victim").returncode == 0
    finally:
        drop_lab.clear_faults()
    ok = drop_lab.kubectl("exec", "victim", "--", "sh", "-c", "seq 1 200000")
    assert ok.returncode == 0 and ok.stdout.endswith("200000\n")


def test_collect_records_dropped_exec_streams(drop_lab: Lab, tmp_path: Path) -> None:
    try:
        drop_lab.set_faults(exec_drop=1.0)
        proc = subprocess.run(
            [sys.executable, "-m", "falcoir", "collect", "--pod", "default/victim",
             "--out", str(tmp_path / "ev"), "-o", "json", "--kubeconfig",
             str(drop_lab.kubeconfig)],
            capture_output=True, text=True, timeout=240, check=False, cwd=str(tmp_path),
            env=falcoir_env(FALCOIR_HOME=str(tmp_path / "home")),
        )  # fmt: skip
    finally:
        drop_lab.clear_faults()
    assert proc.returncode == 7, proc.stderr[-2000:]  # done, evidence incomplete
    doc = json.loads(proc.stdout)
    assert doc["complete"] is False
    execs = [a for a in doc["artifacts"] if a["source"] == "exec"]
    assert execs
    for art in execs:
        assert art["status"] == "failed", art
        assert art["extra"]["error_reason"] == "StreamDropped", art
        assert "before the command's exit status arrived" in art["error"]
    # Each dropped command was tried again before it was given up.
    listings = [a for a in execs if a["name"].startswith("files/ls-tmp")]
    assert len(listings) >= 2, [a["name"] for a in execs]
    st = {c["name"]: c["status"] for c in doc["collectors"]}
    assert st["processes"] == st["network"] == st["files"] == "failed"
    assert st["pod"] == st["events"] == "ok"  # API reads are not exec streams
