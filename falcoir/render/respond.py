"""``respond`` on a terminal: a live view of the steps, the plan, and a summary.

Everything shown comes through :func:`falcoir.render.console.safe`: pod names, process
command lines and API messages are hostile text.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from falcoir.render.console import safe, stderr_console

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from falcoir.core.respond.backend import Plan
    from falcoir.core.respond.graph import StepRecord

_ICONS = {
    "pending": "[dim]·[/]",
    "running": "[cyan]…[/]",
    "ok": "[green]✓[/]",
    "failed": "[bold red]✗[/]",
    "skipped": "[dim]-[/]",
    "interrupted": "[yellow]![/]",
}

ORDER = (
    "locate",
    "owners",
    "check",
    "confirm",
    "bundle",
    "snapshot",
    "quarantine",
    "collect",
    "seal",
    "delete",
    "report",
)


class StepView:
    """The steps as they run: a rich Live table on a terminal, else one line per
    finished step (``plain``), else nothing (``quiet``, for machine output)."""

    def __init__(self, *, live: bool, quiet: bool = False) -> None:
        self.records: dict[str, StepRecord] = {}
        self.notes: dict[str, str] = {}
        self.quiet = quiet
        self._lock = threading.Lock()
        self._live: Live | None = None
        if live and not quiet:
            from rich.live import Live

            self._live = Live(
                self._render(),
                console=stderr_console(),
                refresh_per_second=8,
                transient=False,
                get_renderable=self._render,
            )

    def __enter__(self) -> StepView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    # -- listeners the orchestrator calls (from step threads) -------------------------
    def on_change(self, rec: StepRecord) -> None:
        with self._lock:
            self.records[rec.name] = rec
        if self._live is None and not self.quiet and rec.status.finished:
            stderr_console().print(_line(rec, None))

    def note(self, step: str, text: str) -> None:
        with self._lock:
            self.notes[step] = text

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop refreshing while the operator answers a question."""
        if self._live is None:
            yield
            return
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def _render(self) -> RenderableType:
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(min_width=26)
        table.add_column(justify="right", min_width=7)
        table.add_column(overflow="ellipsis", no_wrap=True, max_width=90)
        with self._lock:
            recs = dict(self.records)
            notes = dict(self.notes)
        for name in ORDER:
            rec = recs.get(name)
            if rec is None:
                continue
            icon = _ICONS.get(rec.status.value, "?")
            dur = rec.duration_s
            detail = rec.detail if rec.status.finished else notes.get(name, "")
            table.add_row(
                icon,
                safe(rec.title),
                "" if dur is None else f"{dur:.2f}s",
                f"[dim]{safe(detail)}[/]" if detail else "",
            )
        return table


def _line(rec: StepRecord, note: str | None) -> str:
    icon = _ICONS.get(rec.status.value, "?")
    dur = rec.duration_s
    took = f" [dim]{dur:.2f}s[/]" if dur is not None else ""
    detail = rec.detail or note or ""
    return f"{icon} {safe(rec.title)}{took}" + (f" [dim]{safe(detail)}[/]" if detail else "")


def _terminal() -> Any:
    """A file to ask on: stdin when it is a terminal, else the controlling terminal
    (``... | falcoir respond -f -`` at a shell), else ``None``."""
    import sys

    if sys.stdin.isatty():
        return None  # typer reads stdin
    try:
        tty = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return False
    if not tty.isatty():
        tty.close()
        return False
    return tty


def ask_plan(plan: Plan, view: StepView) -> bool:
    """Show the plan and ask before the first change (the operator's terminal)."""
    import typer

    tty = _terminal()
    if tty is False:
        from falcoir.errors import ConfirmationRefused

        raise ConfirmationRefused(
            "respond needs confirmation before it changes anything, and there is no "
            "terminal to ask on",
            hint="re-run with --yes to proceed without asking, or --dry-run to see the plan",
        )
    with view.paused():
        console = stderr_console()
        console.print("[bold]Plan[/]")
        for line in plan.lines():
            console.print(f"  {safe(line)}")
        if tty is None:
            return bool(typer.confirm("Proceed?", default=False, err=True))
        try:
            console.print("Proceed? \\[y/N]: ", end="")
            answer = tty.readline(16).strip().lower()
        finally:
            tty.close()
        return answer in ("y", "yes")


def print_summary(doc: Mapping[str, Any]) -> None:
    """The outcome, for a person: target, containment, evidence, deletion, next."""
    console = stderr_console()
    loc = doc.get("locate") or {}
    quar = doc.get("quarantine") or {}
    col = doc.get("collect") or {}
    dele = doc.get("delete") or {}
    timings = doc.get("timings") or {}
    status = doc.get("status")
    colours = {"ok": "green", "dry-run": "cyan", "incomplete": "yellow", "cancelled": "yellow"}
    colour = colours.get(str(status), "red")
    console.print(
        f"\n[bold]Incident {safe(doc.get('incident') or '-')}[/]  [{colour}]{safe(status)}[/]"
    )
    if loc:
        owner = " -> ".join(f"{o.get('kind')} {o.get('name')}" for o in loc.get("owner") or [])
        console.print(
            f"  target     {safe(loc.get('namespace'))}/{safe(loc.get('pod'))} "
            f"container {safe(loc.get('container') or '?')} on {safe(loc.get('node') or '?')}"
            + (f" [dim](owner {safe(owner)})[/]" if owner else "")
        )
    if quar:
        blocked = (quar.get("verified") or {}).get("egress_blocked")
        trusted = (quar.get("verified") or {}).get("trusted") is True
        verdict = (
            "[green]egress verified blocked[/]"
            if blocked and trusted
            else "[green]egress blocked[/] [yellow](in-pod probe, untrusted)[/]"
            if blocked
            else "[cyan]dry run[/]"
            if quar.get("dry_run")
            else "[bold red]egress NOT verified blocked[/]"
        )
        pol = quar.get("policy") or {}
        console.print(
            f"  contained  {verdict} [dim]policy {safe(pol.get('namespace'))}/"
            f"{safe(pol.get('name'))}[/]"
        )
    if col:
        complete = "[green]complete[/]" if col.get("complete") else "[yellow]incomplete[/]"
        console.print(f"  evidence   {complete} {safe(col.get('bundle'))}")
        console.print(f"             {safe(col.get('archive'))}")
        console.print(f"             sha256 {safe(col.get('archive_sha256'))}")
    if dele:
        what = "would delete" if dele.get("dry_run") else "deleted"
        console.print(
            f"  {what:<10} pod {safe(dele.get('namespace'))}/{safe(dele.get('pod'))}: "
            f"{safe(dele.get('owner_effect') or '')}"
        )
    rep = doc.get("report") or {}
    if rep.get("html"):
        console.print(f"  report     {safe(rep.get('html'))}")
    cont = timings.get("containment_s")
    read = timings.get("alert_read_s")
    waited = f", alert read at {read:.2f}s" if isinstance(read, int | float) else ""
    console.print(
        f"  timings    contained in {'-' if cont is None else f'{cont:.2f}s'}, "
        f"done in {timings.get('total_s', 0):.2f}s [dim](from process start{waited})[/]"
    )
    for w in doc.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {safe(w)}")
    err = doc.get("error")
    if err:  # the message itself follows, from the one error mapping
        console.print(f"[bold red]step {safe(err.get('step'))} failed[/]")


def print_follow_line(doc: Mapping[str, Any]) -> None:
    loc = doc.get("locate") or {}
    f = doc.get("follow") or {}
    t = doc.get("timings") or {}
    cont = t.get("containment_s")
    stderr_console().print(
        f"{safe(doc.get('incident'))} {safe(loc.get('namespace'))}/{safe(loc.get('pod'))} "
        f"[{'green' if doc.get('status') == 'ok' else 'yellow'}]{safe(doc.get('status'))}[/] "
        f"actions={safe(','.join(doc.get('actions') or []))} alerts={f.get('alerts')} "
        f"contained={'-' if cont is None else f'{cont:.2f}s'}"
    )


def print_follow_summary(
    summary: Mapping[str, Any], incidents: Sequence[Mapping[str, Any]]
) -> None:
    console = stderr_console()
    console.print(
        f"\n[bold]{summary.get('incidents')} incident(s)[/] from {summary.get('alerts')} "
        f"alert(s): {summary.get('duplicates')} duplicate(s), {summary.get('ignored')} "
        f"ignored by the policy, {summary.get('parse_problems')} unreadable line(s), "
        f"{summary.get('failures')} failure(s)"
    )
    for inc in incidents:
        console.print(
            f"  {safe(inc.get('incident'))} {safe(inc.get('pod'))} alerts={inc.get('alerts')} "
            f"{safe(inc.get('status'))} ({safe(inc.get('policy_rule'))})"
        )
