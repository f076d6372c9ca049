"""Human views of evidence collection and bundles (rich, on stderr).

Every value that came from a pod or an alert goes through ``safe()`` (control
characters made visible, markup escaped) before rich sees it.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from falcoir.core.text import shorten
from falcoir.render.console import safe, stderr_console

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from falcoir.core.bundle import BundleSummary, VerifyReport
    from falcoir.core.collect import CollectorEvent, CollectResult

_STYLE = {
    "ok": "green",
    "skipped": "dim",
    "partial": "yellow",
    "truncated": "yellow",
    "failed": "red",
    "not-found": "red",
    "timeout": "red",
    "interrupted": "red",
}
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _status(text: str) -> str:
    return f"[{_STYLE.get(text, 'white')}]{safe(text)}[/]"


class CollectProgress:
    """A live table on stderr, one line per collector: spinner, bytes, status.

    Use as a context manager and pass the instance as the ``progress`` callback; it is
    called from collector threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._live: Live | None = None
        self._t0 = time.monotonic()

    def __call__(self, event: CollectorEvent) -> None:
        with self._lock:
            row = self._rows.setdefault(
                event.collector, {"state": "run", "bytes": 0, "status": None, "detail": ""}
            )
            if event.state == "bytes":
                row["bytes"] = max(row["bytes"], event.bytes)
            elif event.state == "run":
                row["detail"] = event.detail or ""
            elif event.state == "done":
                row["state"] = "done"
                row["status"] = event.status.value if event.status else "?"
                row["bytes"] = max(row["bytes"], event.bytes)
                row["detail"] = event.detail or ""

    def render(self) -> RenderableType:
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        frame = _SPINNER[int((time.monotonic() - self._t0) * 10) % len(_SPINNER)]
        with self._lock:
            rows = list(self._rows.items())
        for name, row in rows:
            if row["state"] == "done":
                icon = "[green]✓[/]" if row["status"] in ("ok", "skipped") else "[red]✗[/]"
                status = _status(row["status"])
            else:
                icon = f"[cyan]{frame}[/]"
                status = "[cyan]running[/]"
            table.add_row(
                icon,
                f"[bold]{safe(name)}[/]",
                human_bytes(row["bytes"]).rjust(10),
                status,
                f"[dim]{safe(shorten(row['detail'], 70))}[/]",
            )
        return table

    def __enter__(self) -> CollectProgress:
        from rich.live import Live

        class _View:
            def __init__(self, owner: CollectProgress) -> None:
                self.owner = owner

            def __rich__(self) -> RenderableType:
                return self.owner.render()

        self._live = Live(
            _View(self), console=stderr_console(), refresh_per_second=8, transient=False
        )
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None


def print_collect_summary(result: CollectResult, *, collectors: bool = True) -> None:
    """What was captured, where it is, and what is missing (``collectors=False``: the
    live display already showed each collector)."""
    from rich.table import Table

    console = stderr_console()
    table = Table(title=None, show_edge=False, pad_edge=False, box=None)
    table.add_column("collector", style="bold")
    table.add_column("status")
    table.add_column("bytes", justify="right")
    table.add_column("note")
    for outcome in result.collectors:
        table.add_row(
            safe(outcome.name),
            _status(outcome.status.value),
            human_bytes(outcome.bytes),
            safe(outcome.note or ""),
        )
    if collectors:
        console.print(table)
    b = result.binary
    if b is not None and b.sha256:
        deleted = " [yellow](deleted from disk)[/]" if b.deleted else ""
        console.print(
            f"binary   {safe(b.path or '?')}{deleted} pid {b.vpid if b.vpid is not None else '?'}"
            f"  sha256 {safe(b.sha256)}  ({human_bytes(b.bytes)}, stored read-only)"
        )
    remote = [
        c for c in result.connections if c.get("state") == "ESTABLISHED" and c.get("remote_port")
    ]
    for c in remote[:10]:
        procs = ",".join(f"{p}" for p in c.get("processes") or []) or "?"
        pids = ",".join(str(p) for p in c.get("pids") or []) or "?"
        console.print(
            f"conn     {safe(c.get('proto'))} {safe(c.get('local'))} -> {safe(c.get('remote'))}"
            f"  pid {safe(pids)} ({safe(procs)})"
        )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {safe(note)}")
    if result.bundle is not None:
        state = "[green]complete[/]" if result.complete else "[red]INCOMPLETE[/]"
        console.print(f"incident {safe(result.incident)}  evidence {state}")
        console.print(f"bundle   {safe(result.bundle.dir)}")
        console.print(f"archive  {safe(result.bundle.archive)}")
        console.print(f"sha256   {safe(result.bundle.archive_sha256)}")


def print_verify(report: VerifyReport) -> None:
    console = stderr_console()
    if report.ok:
        complete = report.complete
        extra = "" if complete in (None, True) else " (the bundle says its evidence is incomplete)"
        console.print(
            f"[green]OK[/] {safe(report.path)}: {report.files_checked} files, every hash "
            f"matches{extra}"
        )
        return
    if not report.sealed:
        console.print(f"[bold red]UNSEALED[/] {safe(report.path)}: nothing can be verified")
    else:
        console.print(f"[bold red]FAILED[/] {safe(report.path)}: {len(report.problems)} problem(s)")
    for p in report.problems:
        line = f"  [red]{safe(p.kind)}[/] {safe(p.path)}: {safe(p.message)}"
        if p.expected or p.found:
            line += f" (expected {safe(p.expected or '-')}, found {safe(p.found or '-')})"
        console.print(line)


def _hashes(report: VerifyReport) -> str:
    if not report.sealed:
        return "[red]NEVER RECORDED (unsealed: falcoir bundle seal PATH)[/]"
    return "[green]verified[/]" if report.ok else "[red]DO NOT MATCH[/]"


def print_show(summary: BundleSummary) -> None:
    from rich.table import Table

    console = stderr_console()
    info = summary.info
    console.print(f"[bold]bundle[/]    {safe(summary.path)}")
    for key, label in (
        ("Falcoir-Incident", "incident"),
        ("Falcoir-Target", "target"),
        ("Falcoir-Context", "context"),
        ("Falcoir-Operator", "operator"),
        ("Falcoir-Started", "started"),
        ("Falcoir-Sealed", "sealed"),
        ("Falcoir-Version", "falcoir"),
        ("Falcoir-Alert", "alert"),
    ):
        if info.get(key):
            console.print(f"[bold]{label:<9}[/] {safe(shorten(info[key], 300))}")
    if info.get("Falcoir-Incomplete-Reason"):
        console.print(f"[bold]why[/]       {safe(shorten(info['Falcoir-Incomplete-Reason'], 300))}")
    complete = info.get("Falcoir-Complete") == "true"
    console.print(
        f"[bold]evidence[/]  {'[green]complete[/]' if complete else '[red]INCOMPLETE[/]'};"
        f" hashes {_hashes(summary.verify)}"
    )
    table = Table(show_edge=False, pad_edge=False, box=None)
    for col in ("artifact", "status", "bytes", "exit", "command / source"):
        table.add_column(col, justify="right" if col in ("bytes", "exit") else "left")
    for a in summary.artifacts:
        how = " ".join(a.argv) if a.argv else a.source
        if a.argv and a.argv[0] == "sh" and len(a.argv) > 2:
            how = "sh -c <falcoir script> " + " ".join(a.argv[3:])
        if a.error:
            how += f"  [{a.error}]"
        table.add_row(
            safe(a.name),
            _status(a.status.value),
            human_bytes(a.bytes),
            "" if a.exit_code is None else safe(a.exit_code),
            safe(shorten(how, 90)),
        )
    console.print(table)
    if summary.actions:
        console.print("[bold]actions in the cluster[/]")
        for act in summary.actions:
            console.print(
                f"  {safe(act.get('time'))} {safe(act.get('action'))} {safe(act.get('kind'))} "
                f"{safe(act.get('namespace') or '')}/{safe(act.get('name'))} "
                f"{_status(str(act.get('outcome')))} "
                f"{safe(shorten(str(act.get('detail') or ''), 120))}"
            )
    if summary.reports:
        where = ", ".join(
            safe(summary.reports[f]) for f in ("markdown", "html") if f in summary.reports
        )
        console.print(
            f"[bold]report[/]    incident report: {where}"
            " (falcoir bundle show PATH --report prints it, --open opens the HTML)"
        )
    for p in summary.verify.problems:
        console.print(f"  [red]{safe(p.kind)}[/] {safe(p.path)}: {safe(p.message)}")
