"""Security: alert input is read in bounded pieces (``parse -f /dev/zero`` used to die
with a MemoryError traceback; ``respond --follow`` iterated stdin unbounded)."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from falcoir.core.readlimits import bounded_lines, read_bounded
from falcoir.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
ALERT = json.dumps(
    {
        "output": "x",
        "priority": "Critical",
        "rule": "r",
        "time": "2026-11-28T15:00:00.000000000Z",
        "output_fields": {"k8s.ns.name": "default", "k8s.pod.name": "p", "proc.name": "sh"},
    }
)


def _limit_memory() -> None:
    cap = 1_500_000_000  # as the reviewer's `ulimit -v 1500000`
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def falcoir(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FALCOIR_HOME="/nonexistent-falcoir-home")
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=env,
        preexec_fn=_limit_memory,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("parse", "-f", "/dev/zero", "-o", "json"), b"longer than"),
        (("locate", "-f", "/dev/zero", "--kubeconfig", "/nonexistent"), b"more than 16 MiB"),
        (("collect", "-f", "/dev/zero", "--kubeconfig", "/nonexistent"), b"more than 16 MiB"),
    ],
)
def test_endless_input_is_bad_input_not_a_crash(args: tuple[str, ...], message: bytes) -> None:
    res = falcoir(*args)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr
    assert b"Traceback" not in res.stderr and b"MemoryError" not in res.stderr


def test_parse_from_stdin_is_bounded_too() -> None:
    res = falcoir("parse", "-f", "-", "-o", "json", stdin=ALERT.encode() + b"\n" + b"a" * 3_000_000)
    assert res.returncode == 2 and b"line 2 is longer than" in res.stderr
    ok = falcoir("parse", "-f", "-", "-o", "json", stdin=ALERT.encode() + b"\n")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["rule"] == "r"


def test_read_bounded() -> None:
    assert read_bounded(io.StringIO("abc"), "x", limit=3) == "abc"
    with pytest.raises(InputError, match="more than"):
        read_bounded(io.StringIO("abcd"), "x", limit=3)


class Counting(io.StringIO):
    """Remembers the largest piece asked for."""

    biggest = 0

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        assert size is not None and size > 0, "unbounded readline"
        self.biggest = max(self.biggest, size)
        return super().readline(size)


def test_bounded_lines_raise_or_skip() -> None:
    text = "short\n" + "y" * 10 + "\n" + "12345\n" + "z" * 25
    assert list(bounded_lines(io.StringIO("a\nbcdef\n"), "x", limit=5)) == ["a\n", "bcdef\n"]
    with pytest.raises(InputError, match="line 2 is longer than 5"):
        list(bounded_lines(io.StringIO(text), "x", limit=5))
    fh = Counting(text)
    got = list(bounded_lines(fh, "x", limit=5, skip_long=True))
    # the long lines come as their first limit+1 characters (the parser reports them)
    assert got == ["short\n", "yyyyyy", "12345\n", "zzzzzz"]
    assert fh.biggest == 7


FOLLOW = """
import sys
from falcoir.cli.app import app
from falcoir.core.incident import IncidentStore
from tests.respond.fake_backend import FakeBackend

fake, store = FakeBackend(), IncidentStore(__import__("pathlib").Path(sys.argv[2]))
import falcoir.cli.respond
falcoir.cli.respond._backend = lambda *a, **k: (fake, store)
app(["respond", "--follow", "-f", sys.argv[1], "--yes", "-o", "json", "--out", sys.argv[2]])
"""


@pytest.mark.slow
def test_follow_skips_a_huge_line_and_goes_on(tmp_path: Path) -> None:
    miner = (
        "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
    )
    stream = tmp_path / "stream.log"
    with stream.open("wb") as fh:  # 2 GB of one line (sparse), then an alert
        fh.truncate(2_000_000_000)
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n" + miner.encode() + b"\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), FALCOIR_HOME=str(tmp_path / "home"))
    res = subprocess.run(
        [sys.executable, "-c", FOLLOW, str(stream), str(tmp_path / "out")],
        capture_output=True,
        timeout=120,
        env=env,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)["summary"]
    assert summary["alerts"] == 1 and summary["parse_problems"] == 1
