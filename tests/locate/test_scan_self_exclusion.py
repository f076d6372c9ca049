"""Security: no process can hide from locate's scan by imitating the listing script.

The script used to drop every process whose last argument was the constant
``falcoir-ps``; it now leaves out only itself, by its own pid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from falcoir.core.alert import Process
from falcoir.core.locate.procfs import Match
from falcoir.core.locate.scan import (
    PS_SCRIPT,
    _parse_ps,
    _parse_script,
    list_processes,
    match_processes,
)
from tests.locate.test_scan_script import LocalExec
from tests.plugins.lab import Lab, falcoir_env

HIDER = ["while :; do sleep 5; done", "falcoir-ps"]


def test_parser_keeps_a_process_ending_in_the_old_marker() -> None:
    text = "7\tbash\tbash\x1f-c\x1fwhile :; do sleep 5; done\x1ffalcoir-ps\x1f\n"
    assert [(p.pid, p.argv[-1]) for p in _parse_script(text)] == [(7, "falcoir-ps")]
    ps = (
        "  PID COMMAND\n    7 bash -c x falcoir-ps\n"
        "    8 ps -eo pid,args,x\n    9 ps -eo pid,args\n"
    )
    assert [p.pid for p in _parse_ps(ps)] == [7, 8]


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_a_process_imitating_the_script_is_listed(shell: str) -> None:
    if shell == "busybox":
        bb = shutil.which("busybox")
        if bb is None:
            pytest.skip("busybox not installed")
        gw = LocalExec([bb, "sh"])
    else:
        gw = LocalExec(["/bin/sh"])
    hider = subprocess.Popen(["/bin/sh", "-c", *HIDER])
    try:
        time.sleep(0.1)
        procs, problem = list_processes(gw, "ns", "p", "c")  # type: ignore[arg-type]
        assert problem is None
        mine = [p for p in procs if p.pid == hider.pid]
        assert len(mine) == 1 and mine[0].argv == ("/bin/sh", "-c", *HIDER)
        alert = Process(name="sh", cmdline="/bin/sh -c " + " ".join(HIDER))
        assert any(p.pid == hider.pid and m >= Match.WEAK for p, m in match_processes(alert, procs))
        # the listing script itself is still left out
        first_line = PS_SCRIPT.splitlines()[0]
        assert not any(any(a.startswith(first_line) for a in p.argv) for p in procs)
    finally:
        hider.kill()
        hider.wait()


@pytest.mark.lab
@pytest.mark.root
@pytest.mark.slow
def test_lab_scan_finds_the_hiding_process(lab: Lab, fresh_namespace: str, tmp_path: Path) -> None:
    from falcoir.lab.linux import can_isolate

    if os.geteuid() != 0 or not can_isolate()[0]:
        pytest.skip("needs root for the lab's isolated pods")
    ns = fresh_namespace
    lab.client.create(
        "pods",
        {
            "metadata": {"name": "scanevade", "namespace": ns},
            "spec": {"containers": [{"name": "main", "image": "ubuntu:latest",
                                     "command": ["/bin/bash", "-c", *HIDER]}]},
        },
        ns,
    )  # fmt: skip
    lab.client.wait_until(
        lambda: (
            (lab.client.get("pods", "scanevade", ns).get("status") or {}).get("phase") == "Running"
        ),
        timeout=60,
    )
    alert = {
        "output": "x",
        "priority": "Critical",
        "rule": "r",
        "time": "2026-11-28T15:00:00.000000000Z",
        "output_fields": {
            "proc.name": "bash",
            "proc.cmdline": "bash -c while :; do sleep 5; done falcoir-ps",
            "proc.exepath": "/usr/bin/bash",
        },
    }
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(alert))
    env = falcoir_env(FALCOIR_HOME=str(tmp_path / "home"))
    env.pop("KUBECONFIG", None)
    argv = [sys.executable, "-m", "falcoir", "locate", "-f", str(path), "-n", ns,
            "--kubeconfig", str(lab.kubeconfig), "-o", "json"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["pod"], doc["method"]) == ("scanevade", "scan")
