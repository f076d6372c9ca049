"""The rich views: hostile text is shown neutralised, the progress has a line per
collector, and nothing of it reaches stdout."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from falcoir.core.collect import CollectorEvent, CollectorStatus
from falcoir.render import bundle as view
from falcoir.render import console as console_mod


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    con = Console(file=buf, width=200, force_terminal=True, color_system=None)
    monkeypatch.setattr(view, "stderr_console", lambda: con)
    monkeypatch.setattr(console_mod, "stderr_console", lambda: con)
    return buf


def test_progress_lines_are_neutralised() -> None:
    p = view.CollectProgress()
    p(CollectorEvent("processes", "start"))
    p(CollectorEvent("processes", "run", detail="ps auxww"))
    p(CollectorEvent("binary", "start"))
    p(CollectorEvent("binary", "bytes", bytes=3 * 1024 * 1024))
    p(CollectorEvent("processes", "done", status=CollectorStatus.OK, bytes=2048,
                     detail="\x1b]0;pwned\x07[bold red]x[/]"))  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(p.render())
    out = buf.getvalue()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "processes" in lines[0] and "2.0 KiB" in lines[0] and "ok" in lines[0]
    assert "\\x1b]0;pwned\\x07[bold red]x[/]" in lines[0] and "\x1b" not in out
    assert "binary" in lines[1] and "3.0 MiB" in lines[1] and "running" in lines[1]


def test_summary_and_show_neutralise(captured: io.StringIO, tmp_path: Path) -> None:
    from tests.collect.support import Proc
    from tests.collect.test_collect_scripted import cluster_with, go, miner_container

    box = miner_container()
    box.procs.append(Proc(66, b"\x1b[2Jevil", [b"\x1b[2Jevil"], b"/tmp/evil", sockets=[5555]))
    res = go(tmp_path, cluster_with(box))
    view.print_collect_summary(res)
    from falcoir.core.bundle import summarize, verify

    view.print_show(summarize(res.bundle.dir))
    view.print_verify(verify(res.bundle.dir))
    out = captured.getvalue()
    assert "\x1b[2J" not in out
    assert "10.96.0.9:3333" in out and "processes/ps.txt" in out and "OK" in out


def test_human_bytes() -> None:
    assert view.human_bytes(0) == "0 B"
    assert view.human_bytes(1536) == "1.5 KiB"
    assert view.human_bytes(5 * 1024**3) == "5.0 GiB"
