"""`falcoir parse`: read Falco alerts in any shape and print them normalised.

Kept light on purpose: ``falcoir parse`` must start fast and never import the
Kubernetes client; rich is imported only to draw the table or an error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from falcoir.cli.common import OutputOpt, guarded
from falcoir.errors import InputError
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.alert import Alert
    from falcoir.core.parse import ParseProblem, RuleSet

MAX_PROBLEMS_SHOWN = 50

AlertsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Falco alerts: text lines or JSON documents (each argument may hold several lines).",
        show_default=False,
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Read alerts from FILE ('-' for stdin). Formats may be mixed line by line.",
        show_default=False,
    ),
]
RulesOpt = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="A Falco rules YAML file: names the rule of text alerts and splits their "
        "fields exactly by the rule's output template.",
        show_default=False,
    ),
]


def _lines_of_file(fh: TextIO) -> Iterator[str]:
    yield from fh


def _sources(alerts: list[str] | None, file: Path | None) -> Iterator[str]:
    """Every input line: the arguments first, then the file (or stdin)."""
    for arg in alerts or ():
        yield from arg.split("\n")
    if file is None:
        return
    if str(file) == "-":
        stdin = sys.stdin
        if hasattr(stdin, "reconfigure"):
            stdin.reconfigure(errors="replace")
        yield from _lines_of_file(stdin)
        return
    try:
        fh = file.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
    with fh:
        yield from _lines_of_file(fh)


def _report_problem(problem: ParseProblem) -> None:
    from falcoir.render.console import safe, warn

    where = f"line {problem.line}"
    if problem.end_line is not None and problem.end_line != problem.line:
        where += f"-{problem.end_line}"
    warn(f"{where}: {safe(problem.reason)}: {safe(problem.text[:160])}")


@dataclass
class ParseRun:
    alerts: list[Alert] = field(default_factory=list)
    """Alerts kept for table/json/yaml output (jsonl writes each at once instead)."""
    count: int = 0
    skipped: int = 0
    problems: int = 0


def run_parse(
    lines: Iterable[str],
    *,
    rules: RuleSet | None,
    output: OutputFormat,
) -> ParseRun:
    """Parse ``lines``; with jsonl write each alert as it arrives; problems to stderr."""
    from falcoir.core.alert import Alert
    from falcoir.core.parse import ParseProblem, iter_parse
    from falcoir.render.output import write_machine

    run = ParseRun()
    for item in iter_parse(lines, rules=rules):
        if isinstance(item, Alert):
            run.count += 1
            if output is OutputFormat.JSONL:
                write_machine(item.to_dict(), OutputFormat.JSONL)
            else:
                run.alerts.append(item)
        elif isinstance(item, ParseProblem):
            run.problems += 1
            if run.problems <= MAX_PROBLEMS_SHOWN:
                _report_problem(item)
        else:
            run.skipped += 1
    if run.problems > MAX_PROBLEMS_SHOWN:
        from falcoir.render.console import warn

        warn(f"{run.problems - MAX_PROBLEMS_SHOWN} more lines could not be read")
    return run


def parse_command(
    alerts: AlertsArg = None,
    file: FileOpt = None,
    rules: RulesOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Parse Falco alerts (text, JSON, Falcosidekick) and print them normalised.

    Reads the ALERT arguments, then -f FILE (or stdin with -f -, or when stdin is a
    pipe and nothing else is given). Lines Falco logs about itself are skipped; a line
    that cannot be read is reported on stderr with its number and the rest still parse.
    Exit 2 only when no alert at all was found.
    """
    if not alerts and file is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(
                "no alert given",
                hint="pass alert lines as arguments, or use -f FILE / -f - (stdin)",
            )
        file = Path("-")
    ruleset = None
    if rules is not None:
        from falcoir.core.parse import load_rules

        ruleset = load_rules(rules)
    run = run_parse(_sources(alerts, file), rules=ruleset, output=output)
    if run.count == 0:
        detail = ""
        if run.skipped or run.problems:
            detail = f" ({run.skipped} lines skipped, {run.problems} unreadable)"
        raise InputError(
            "no Falco alert found in the input" + detail,
            hint="paste the whole alert line, or the JSON document Falco printed",
        )
    if output is OutputFormat.TABLE:
        from falcoir.render.alerts import print_alerts_table

        print_alerts_table(run.alerts, skipped=run.skipped, problems=run.problems)
    elif output is not OutputFormat.JSONL:
        from falcoir.render.output import write_machine

        write_machine([a.to_dict() for a in run.alerts], output, as_list=True)


def register(app: typer.Typer) -> None:
    """Add ``falcoir parse`` to ``app``."""
    app.command("parse")(guarded(parse_command))
