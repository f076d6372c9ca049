"""The incident report from plain data: content, escaping, and a render in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from falcoir.core import report
from falcoir.core.clock import Clock
from falcoir.core.incident import IncidentStore
from falcoir.core.policy import ActionOptions
from falcoir.core.respond import RespondRequest, respond

from . import chromium
from .fake_backend import FakeBackend, make_alert, make_target

HOSTILE_PS = (
    b"  PID  PPID USER     COMMAND\n"
    b"    1     0 root     /bin/sh -c sleep 1\n"
    b"    7     1 root     /tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x\n"
    b"    8     1 root     \x1b[31mred\x1b[0m <script>alert(1)</script> [bold]x[/bold] `tick`\n"
    b"   11     8 nobody   sleep 3600\n"
)


def run_with_report(tmp_path: Path, **backend_kw: object):  # type: ignore[no-untyped-def]
    backend = FakeBackend(**backend_kw)  # type: ignore[arg-type]
    result = respond(
        backend,
        RespondRequest(alert=make_alert(), out_dir=tmp_path / "out", options=ActionOptions()),
        store=IncidentStore(tmp_path / "home"),
        clock=Clock.now(),
        report_writer=report.render,
    )
    return backend, result


def test_parse_processes_shapes() -> None:
    rows = report.parse_processes(HOSTILE_PS.decode())
    assert [(r.pid, r.ppid) for r in rows] == [(1, 0), (7, 1), (8, 1), (11, 8)]
    aux = (
        "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND\n"
        "root 1 0.0 0.0 2 1 ? Ss 14:00 0:00 /bin/sh -c sleep 1\n"
        "root 7 99 0.1 5 4 ? R 14:00 1:00 /tmp/xmrig -o pool:3333\n"
    )
    rows = report.parse_processes(aux)
    assert [r.command for r in rows] == ["/bin/sh -c sleep 1", "/tmp/xmrig -o pool:3333"]
    assert rows[1].ppid is None and rows[1].user == "root"
    busybox = (
        "PID   USER     TIME  COMMAND\n    1 root      0:00 sh\n   12 root      0:03 /tmp/xmrig\n"
    )
    rows = report.mark_suspect(report.parse_processes(busybox), make_alert(), None)
    assert [r.suspect for r in rows] == [False, True]  # by name when no vpid or cmdline
    assert report.parse_processes("garbage\nno header") == []


def test_tree_and_suspect_by_vpid() -> None:
    rows = report.mark_suspect(
        report.parse_processes(HOSTILE_PS.decode()), make_alert(), make_target()
    )
    tree = report.build_tree(rows)
    assert [n.row.pid for n in tree] == [1]
    assert [c.row.pid for c in tree[0].children] == [7, 8]
    assert tree[0].children[1].children[0].row.pid == 11
    assert [r.pid for r in rows if r.suspect] == [7]


def test_report_in_bundle_has_every_section(tmp_path: Path) -> None:
    backend, result = run_with_report(tmp_path)
    files = backend.bundles[0].files
    md = files["data/report.md"].decode()
    html_text = files["data/report.html"].decode()
    for title in (
        "## Timeline",
        "## Process tree",
        "## Connections",
        "## Files in /tmp",
        "## Hashes",
        "## Actions falcoir took",
        "## What to do next",
    ):
        assert title in md
    assert "7 root /tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x  <== SUSPECT" in md
    assert "10.42.0.1:3333" in md and "xmrig" in md
    assert "Deny egress by default in namespace default" in md
    assert "Review the Deployment cryptominer-demo" in md
    assert "trivy image ubuntu:latest" in md
    assert "Block execution from /tmp" in md
    # The timeline runs from the alert to the last action (the deletion).
    tl = md.split("## Timeline")[1].split("## Process tree")[0]
    assert tl.index("Falco alert") < tl.index("create NetworkPolicy") < tl.index("delete Pod")
    # HTML: the suspect is highlighted, everything self-contained.
    assert '<span class="proc suspect"><span class="pid">7</span>' in html_text
    assert "Content-Security-Policy" in html_text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html_text)
    assert "<script" not in html_text and "@import" not in html_text
    assert result.report["html"].endswith("data/report.html")


def test_hostile_text_is_inert(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.snapshot = _snapshot_with(backend, HOSTILE_PS)  # type: ignore[method-assign]
    respond(
        backend,
        RespondRequest(alert=make_alert(), out_dir=tmp_path / "out"),
        store=IncidentStore(tmp_path / "home"),
        clock=Clock.now(),
        report_writer=report.render,
    )
    files = backend.bundles[0].files
    html_text = files["data/report.html"].decode()
    md = files["data/report.md"].decode()
    assert "<script>alert(1)</script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "\x1b" not in html_text and "\x1b" not in md
    assert "\\x1b[31mred" in html_text
    # in Markdown the tree is inside a fence no line of pod data can close
    fence_lines = [ln for ln in md.splitlines() if ln.startswith("```")]
    assert len(fence_lines) % 2 == 0


def _snapshot_with(backend: FakeBackend, ps: bytes):  # type: ignore[no-untyped-def]
    def snapshot(target, bundle, progress, started):  # type: ignore[no-untyped-def]
        arts = [backend._artifact(bundle, "snapshot/processes.txt", ps)]
        return {"artifacts": arts, "complete": True}

    return snapshot


def test_markdown_escaping_helpers() -> None:
    assert report.md_code("a`b") == "``a`b``"
    assert report.md_text("*x* | <b>") == "\\*x\\* \\| \\<b\\>"
    assert report.md_block("```\nx").startswith("````\n")


def test_unverified_and_kept_pod_next_steps() -> None:
    steps = report.next_steps(
        make_alert(),
        make_target(),
        {"verified": {"egress_blocked": False}, "policy": {}},
        None,
    )
    titles = [t for t, _, _ in steps]
    assert titles[0] == "Containment was not verified"
    assert "The pod is still running, quarantined" in titles


@pytest.mark.slow
def test_report_renders_in_headless_chromium_and_draws_the_tree(tmp_path: Path) -> None:
    if chromium.chromium_path() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    backend, _ = run_with_report(tmp_path)
    page = tmp_path / "report.html"
    page.write_bytes(backend.bundles[0].files["data/report.html"])
    rows, console = chromium.render(page, tmp_path)
    assert console == [], "the page logged errors: " + "\n".join(console)
    suspect = chromium.count(rows, chromium.hex_rgb(report.SUSPECT_COLOUR))
    tree = chromium.count(rows, chromium.hex_rgb(report.TREE_COLOUR))
    # The suspect's marker (14 px wide) and the other processes' markers (6 px) are drawn.
    assert suspect >= 14 * 12, suspect
    assert tree >= 6 * 12 * 2, tree
