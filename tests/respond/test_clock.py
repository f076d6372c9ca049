"""The process-start clock used for respond's timings."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from falcoir.core.clock import Clock, parse_stat_starttime, process_age, process_clock

ROOT = Path(__file__).resolve().parents[2]


def test_parse_stat_handles_hostile_command_names() -> None:
    fields = " ".join(str(i) for i in range(3, 53))
    # comm with spaces and parentheses: fields count from the last ')'
    line = f"4242 (a) b (c)) S {fields.split(' ', 1)[1]}"
    assert parse_stat_starttime(line) == 22
    with pytest.raises(ValueError):
        parse_stat_starttime("4242 no parens here")
    with pytest.raises(ValueError):
        parse_stat_starttime("4242 (x) S 1 2")


def test_process_age_from_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    rest = " ".join(["0"] * 18)
    (tmp_path / "self" / "stat").write_text(f"1 (python3) S {rest} 5000 0 0\n")
    (tmp_path / "uptime").write_text("100.00 50.00\n")
    assert process_age(tmp_path, ticks=100) == pytest.approx(50.0)
    (tmp_path / "uptime").write_text("10.00 5.00\n")  # disagreeing files: not trusted
    assert process_age(tmp_path, ticks=100) is None
    assert process_age(tmp_path / "missing") is None


def test_fallback_when_proc_is_unreadable(tmp_path: Path) -> None:
    clock = process_clock(tmp_path)
    assert clock.source == "import"
    assert clock.elapsed() >= 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_process_clock_counts_interpreter_start_up() -> None:
    # A child sleeps before importing falcoir: the elapsed time it reports must include it.
    code = (
        "import time; time.sleep(0.5)\n"
        "from falcoir.core.clock import process_clock\n"
        "c = process_clock(); print(c.source, c.elapsed())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=30,
    ).stdout.split()
    assert out[0] == "proc"
    assert 0.45 <= float(out[1]) < 10


def test_clock_wall_time() -> None:
    c = Clock.now()
    later = c.start_mono + 2.5
    assert (c.wall(later).timestamp() - c.start_wall) == pytest.approx(2.5, abs=1e-3)
    assert c.elapsed(later) == pytest.approx(2.5)
    assert c.elapsed() < 1
    assert time.monotonic() >= c.start_mono
