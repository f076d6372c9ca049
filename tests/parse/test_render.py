"""The alert table: hostile values shown inert, the summary line."""

from __future__ import annotations

import io

from rich.console import Console

from falcoir.core.parse import parse_text
from falcoir.render.alerts import print_alerts_table


def render(text: str, **kw: int) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=400, force_terminal=False, color_system=None)
    report = parse_text(text)
    print_alerts_table(report.alerts, console=console, **kw)
    return buf.getvalue()


def test_markup_and_escapes_are_inert() -> None:
    out = render(
        "10:00:00.000000001: Critical Evil [link=http://x]click[/link] (command=sh -c "
        "\x1b[31mred\x1b[0m\u202e [bold]b[/bold] pid=7 container_id=3c1f0d9be2a4 "
        "k8s_pod_name=[red]pod[/] k8s_ns_name=ns)"
    )
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "\\x1b[31mred\\x1b[0m\\u202e [bold]b[/bold]" in out
    assert "[link=http://x]click[/link]" in out
    assert "ns/[red]pod[/]" in out


def test_table_columns_and_summary() -> None:
    out = render(
        "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        "cmdline=/tmp/xmrig -o pool.example.com:3333, pid=12345)",
        skipped=2,
        problems=1,
    )
    assert "xmrig pid 12345" in out
    assert "(rule unknown)" in out
    assert "1 alert, 2 Falco log lines skipped, 1 unreadable" in out
