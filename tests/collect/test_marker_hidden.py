"""The /proc dump's section marker: no process in the pod can learn it from a command
line, and one that frames its own text as sections cannot end the dump or replace
another process (finding 3)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from falcoir.core.collect import procfs, scripts
from tests.collect.support import Container, Proc
from tests.collect.test_collect_scripted import cluster_with, go, miner_container, read


@dataclass
class Forger(Container):
    """A container whose process 2 writes any marker it can see in a command line
    into its cwd link, as ``"\\n<marker> end\\n"``, to cut the dump short."""

    def reply(
        self, argv: Sequence[str], stdin: bytes | None = None
    ) -> tuple[bytes, bytes, int | None]:
        leaked = [a for a in argv if a.startswith("@@falcoir-")]
        for p in self.procs:
            if p.pid == 2:
                p.cwd = b"/x\n" + leaked[0].encode() + b" end\n" if leaked else b"/x"
        return super().reply(argv, stdin)


def test_marker_is_in_no_command_line_and_no_process_vanishes(tmp_path: Path) -> None:
    base = miner_container()
    box = Forger(
        procs=[Proc(2, b"forge", [b"/forge"], b"/forge"), *base.procs],
        files=base.files,
        tcp=base.tcp,
    )
    cluster = cluster_with(box)
    res = go(tmp_path, cluster)
    execs = [c for c in cluster.calls if c[0] == "exec"]
    assert execs
    assert not any("@@falcoir-" in part for c in execs for part in c)
    procs = json.loads(read(res, "processes/processes.json"))
    assert sorted(p["pid"] for p in procs) == [1, 2, 7, 42]


M = "@@falcoir-0123456789abcdef01234567"


def section(kind: str, body: bytes) -> bytes:
    return b"\n" + M.encode() + b" " + kind.encode() + b"\n" + body + b"\n"


def proc(pid: int, comm: bytes, cwd: bytes) -> bytes:
    return (
        section(f"pid {pid}", b"")
        + section("stat", b"%d (%s) S 1 1 1 0" % (pid, comm))
        + section("cmdline", comm + b"\x00")
        + section("cwd", cwd)
    )


def test_a_forged_end_or_repeated_pid_in_a_process_text_is_ignored() -> None:
    # process 5 frames its cwd as the end of the dump, then as process 3 again
    forged = b"/x" + section("end", b"") + section("pid 3", b"") + section("stat", b"3 (fake) S")
    dump = (
        proc(3, b"real", b"/")
        + proc(5, b"forge", forged)
        + proc(9, b"later", b"/")
        + section("end", b"")
    )
    procs = procfs.parse_proc_dump(dump, M)
    assert [(p.pid, p.comm) for p in procs] == [(3, "real"), (5, "forge"), (9, "later")]
    assert next(p for p in procs if p.pid == 5).cwd == "/x"


def test_the_dump_script_reads_its_marker_from_stdin() -> None:
    proc_ = subprocess.run(
        ["sh", "-c", scripts.PROC_DUMP, "sh"],
        input=M.encode() + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert proc_.returncode == 0, proc_.stderr
    assert proc_.stdout.rstrip().endswith(M.encode() + b" end")
    procs = procfs.parse_proc_dump(proc_.stdout, M)
    assert len(procs) > 1
    assert not any(M in arg for p in procs for arg in p.cmdline)
    empty = subprocess.run(
        ["sh", "-c", scripts.PROC_DUMP, "sh"], input=b"", capture_output=True, timeout=60
    )
    assert empty.returncode == 2 and empty.stdout == b""
