"""The process-listing script really works on a Linux /proc (sh and busybox sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from falcoir.core.alert import Process
from falcoir.core.gateway import ExecResult
from falcoir.core.locate.procfs import Match
from falcoir.core.locate.scan import PS_SCRIPT, _parse_ps, list_processes, match_processes


class LocalExec:
    """A gateway whose exec runs argv on this machine (``sh`` reads the real /proc)."""

    def __init__(self, shell: list[str]) -> None:
        self.shell = shell

    def exec(
        self, namespace: str, pod: str, container: str | None, argv: Sequence[str], **kw: object
    ) -> ExecResult:
        now = datetime.now(UTC)
        cmd = [*self.shell, *argv[1:]] if argv[0] == "sh" else list(argv)
        p = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
        return ExecResult(tuple(argv), container, p.stdout, p.stderr, p.returncode, now, now)


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_script_lists_this_process(shell: str) -> None:
    if shell == "busybox":
        bb = shutil.which("busybox")
        if bb is None:
            pytest.skip("busybox not installed")
        gw = LocalExec([bb, "sh"])
    else:
        gw = LocalExec(["/bin/sh"])
    procs, problem = list_processes(gw, "ns", "p", "c")  # type: ignore[arg-type]
    assert problem is None
    mine = [p for p in procs if p.pid == os.getpid()]
    assert len(mine) == 1
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as fh:
        real = tuple(fh.read().decode().rstrip("\0").split("\0"))
    assert mine[0].argv == real
    assert not any(p.argv and p.argv[-1] == "falcoir-ps" for p in procs)
    # the alert's view of this very process matches strongly
    alert = Process(name=mine[0].name, cmdline=" ".join(real))
    found = match_processes(alert, procs)
    assert any(p.pid == os.getpid() and m == Match.STRONG for p, m in found)


def test_script_is_constant() -> None:
    assert "{" not in PS_SCRIPT.replace("${d#/proc/}", "").replace("${n#Name:?}", "")


def test_ps_fallback_parsing() -> None:
    out = (
        "  PID COMMAND\n    1 /bin/sh -c sleep 1\n   7 /tmp/xmrig -o p:3333\n   9 ps -eo pid,args\n"
    )
    procs = _parse_ps(out)
    assert [(p.pid, p.name) for p in procs] == [(1, "sh"), (7, "xmrig")]
