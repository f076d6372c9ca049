"""Piped alert, operator at a terminal: the plan is asked on the controlling terminal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HARNESS = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.respond.fake_backend import FakeBackend
from falcoir.core.incident import IncidentStore
import falcoir.cli.respond as cli
fake = FakeBackend()
cli._backend = lambda *a, **k: (fake, IncidentStore(Path({home!r})))
from falcoir.cli.app import app
try:
    app(["respond", "-f", "-", "--out", {out!r}])
finally:
    print("CALLS", ",".join(fake.order()), file=sys.stderr)
"""

ALERT = (
    "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
)


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pty")
@pytest.mark.parametrize(("answer", "code", "changed"), [("n", 2, False), ("y", 0, True)])
def test_piped_alert_asks_on_the_controlling_terminal(
    tmp_path: Path, answer: str, code: int, changed: bool
) -> None:
    harness = tmp_path / "harness.py"
    harness.write_text(
        HARNESS.format(root=str(ROOT), home=str(tmp_path / "home"), out=str(tmp_path / "out"))
    )
    inner = f"printf '%s\\n' '{ALERT}' | {sys.executable} {harness}; echo EXIT=$?"
    proc = subprocess.run(
        ["script", "-qec", inner, "/dev/null"],
        input=answer + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    out = proc.stdout
    assert "Proceed? [y/N]" in out, out[-2000:]
    assert f"EXIT={code}" in out, out[-2000:]
    assert ("quarantine" in out.split("CALLS", 1)[1].split("\n", 1)[0]) is changed


FOLLOW_HARNESS = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.respond.fake_backend import FakeBackend
from falcoir.core.incident import IncidentStore
import falcoir.cli.respond as cli
fake = FakeBackend()
cli._backend = lambda *a, **k: (fake, IncidentStore(Path({home!r})))
from falcoir.cli.app import app
app(["respond", "--follow", "-f", "-", "--yes", "-o", "jsonl", "--out", {out!r}])
"""


def test_ctrl_c_in_follow_mode_reports_and_exits_130(tmp_path: Path) -> None:
    import json
    import signal

    harness = tmp_path / "follow.py"
    harness.write_text(
        FOLLOW_HARNESS.format(
            root=str(ROOT), home=str(tmp_path / "home"), out=str(tmp_path / "out")
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(harness)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(ALERT + "\n")
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())  # the incident, while the stream stays open
    assert first["status"] == "ok"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["interrupted"] is True and summary["incidents"] == 1
