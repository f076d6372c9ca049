"""The human table of parsed alerts (rich, on stderr).

Every value in an alert is attacker-controlled (process names, command lines, file
names): each cell goes through :func:`falcoir.render.console.safe`, which makes control
characters visible and escapes rich markup. rich is imported only when a table is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from falcoir.core.text import shorten
from falcoir.render.console import safe

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from falcoir.core.alert import Alert

_PRIORITY_STYLE = {
    "Emergency": "bold red",
    "Alert": "bold red",
    "Critical": "red",
    "Error": "red",
    "Warning": "yellow",
    "Notice": "cyan",
    "Informational": "green",
    "Debug": "dim",
}

CMDLINE_WIDTH = 60


def _cell(value: object, width: int | None = None) -> str:
    if value is None or value == "":
        return "[dim]-[/]"
    text = str(value)
    if width is not None:
        text = shorten(text, width)
    return safe(text)


def _process(alert: Alert) -> str:
    p = alert.process
    parts = []
    if p.name:
        parts.append(safe(p.name))
    if p.pid is not None:
        parts.append(f"pid {p.pid}")
    if p.vpid is not None:
        parts.append(f"vpid {p.vpid}")
    head = " ".join(parts) if parts else "[dim]-[/]"
    if p.cmdline:
        head += "\n" + safe(shorten(p.cmdline, CMDLINE_WIDTH))
    return head


def _where(alert: Alert) -> str:
    lines = []
    if alert.k8s.namespace or alert.k8s.pod:
        lines.append(safe(f"{alert.k8s.namespace or '?'}/{alert.k8s.pod or '?'}"))
    c = alert.container
    if c.id or c.name:
        label = " ".join(x for x in (c.id, c.name) if x)
        lines.append(safe(f"container {label}"))
    if alert.node:
        lines.append(safe(f"node {alert.node}"))
    return "\n".join(lines) if lines else "[dim]-[/]"


def alerts_table(alerts: Sequence[Alert]) -> Table:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold", expand=False)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("priority", no_wrap=True)
    table.add_column("rule / message")
    table.add_column("process")
    table.add_column("pod / container / node")
    for a in alerts:
        prio = a.priority or "-"
        style = _PRIORITY_STYLE.get(prio, "")
        prio_cell = f"[{style}]{safe(prio)}[/]" if style else safe(prio)
        title = _cell(a.rule) if a.rule else "[dim](rule unknown)[/]"
        if a.message:
            title += "\n" + _cell(a.message, 100)
        if a.truncated:
            title += "\n[yellow](line cut short)[/]"
        table.add_row(
            _cell(a.line),
            _cell(a.time),
            prio_cell,
            title,
            _process(a),
            _where(a),
        )
    return table


def print_alerts_table(
    alerts: Sequence[Alert],
    *,
    skipped: int = 0,
    problems: int = 0,
    console: Console | None = None,
) -> None:
    """Draw the table and a one-line summary on stderr (or ``console``)."""
    if console is None:
        from falcoir.render.console import stderr_console

        console = stderr_console()
    console.print(alerts_table(alerts))
    summary = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    if skipped:
        summary += f", {skipped} Falco log line{'s' if skipped != 1 else ''} skipped"
    if problems:
        summary += f", [yellow]{problems} unreadable[/]"
    console.print(summary)
