"""`falcoir parse`: read Falco alerts in any shape and print them normalised.

Kept light on purpose: ``falcoir parse`` must start fast (it is the first command a
user runs and what ``respond`` pipelines call) and never import the Kubernetes client.
This typer version coerces every declared non-boolean parameter through a pydantic
TypeAdapter, and importing pydantic alone costs about 0.15 s. So ``parse`` declares no
typer parameters: it takes its arguments raw from the click context and reads them with
:func:`parse_args` (same options as the contract: ``[ALERT ...] [-f FILE|-] [--rules
FILE] [-o table|json|jsonl|yaml]``). rich is imported only to draw the table or an error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer

from falcoir.cli.common import guarded
from falcoir.errors import InputError
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.alert import Alert
    from falcoir.core.parse import ParseProblem, RuleSet

MAX_PROBLEMS_SHOWN = 50

HELP = """Parse Falco alerts (text, JSON, Falcosidekick) and print them normalised.

ALERT: a Falco alert as text or JSON (each argument may hold several lines). Then
-f/--file FILE is read ('-' for stdin); with neither, a piped stdin is read. Formats may
be mixed line by line, and JSON may be pretty-printed over several lines.

--rules FILE: a Falco rules YAML file; names the rule of text alerts and splits their
key=value pairs exactly by the rule's output template.

-o/--output table|json|jsonl|yaml: table (default) is for humans, on stderr; json (a
list), jsonl (one alert a line, written as each arrives) and yaml go to stdout.

Falco's own log lines are skipped; a line that cannot be read is reported on stderr with
its number and the rest still parse. Exit 2 only when no alert at all was found.

-h/--help: show this message and exit.
"""


@dataclass(frozen=True)
class ParseArgs:
    alerts: tuple[str, ...] = ()
    file: Path | None = None
    rules: Path | None = None
    output: OutputFormat = OutputFormat.TABLE


def _value(args: Sequence[str], i: int, name: str) -> str:
    if i + 1 >= len(args):
        raise InputError(f"option {name} needs a value", hint="see falcoir parse --help")
    return args[i + 1]


def parse_args(args: Sequence[str]) -> ParseArgs:
    """Read ``[ALERT ...] [-f FILE] [--rules FILE] [-o FORMAT]`` (``--`` ends options)."""
    alerts: list[str] = []
    file: str | None = None
    rules: str | None = None
    output: str | None = None
    i = 0
    options_done = False
    while i < len(args):
        arg = args[i]
        if options_done or not arg.startswith("-") or arg == "-":
            alerts.append(arg)
            i += 1
            continue
        if arg == "--":
            options_done = True
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        if not eq and name.startswith("-") and not name.startswith("--") and len(name) > 2:
            name, inline, eq = name[:2], name[2:], "="  # -ojson, -ffile
        if name in ("-f", "--file"):
            file = inline if eq else _value(args, i, name)
        elif name == "--rules":
            rules = inline if eq else _value(args, i, name)
        elif name in ("-o", "--output"):
            output = inline if eq else _value(args, i, name)
        else:
            raise InputError(f"no such option: {arg}", hint="see falcoir parse --help")
        i += 1 if eq else 2
    fmt = OutputFormat.TABLE
    if output is not None:
        try:
            fmt = OutputFormat(output)
        except ValueError:
            choices = ", ".join(f.value for f in OutputFormat)
            raise InputError(f"invalid output format {output!r} (choose from {choices})") from None
    return ParseArgs(
        alerts=tuple(alerts),
        file=Path(file) if file is not None else None,
        rules=Path(rules) if rules is not None else None,
        output=fmt,
    )


def _lines_of_file(fh: TextIO) -> Iterator[str]:
    from falcoir.core.readlimits import bounded_lines

    yield from bounded_lines(fh, "stdin" if fh is sys.stdin else str(fh.name))


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


def parse_command(args: ParseArgs) -> None:
    """Run ``falcoir parse`` with already-read arguments."""
    file = args.file
    if not args.alerts and file is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(
                "no alert given",
                hint="pass alert lines as arguments, or use -f FILE / -f - (stdin)",
            )
        file = Path("-")
    ruleset = None
    if args.rules is not None:
        from falcoir.core.parse import load_rules

        ruleset = load_rules(args.rules)
    output = args.output
    run = run_parse(_sources(list(args.alerts), file), rules=ruleset, output=output)
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


def _wants_help(args: Sequence[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg in ("--help", "-h"):
            return True
    return False


@guarded
def _parse_entry(ctx: typer.Context) -> None:
    args = list(ctx.args)
    if _wants_help(args):
        # Our own --help: typer's help option would be coerced through pydantic.
        sys.stdout.write(ctx.get_help() + "\n")
        return
    try:
        parse_command(parse_args(args))
    except BrokenPipeError:
        # `falcoir parse -o jsonl ... | head`: the reader left; stop quietly.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def register(app: typer.Typer) -> None:
    """Add ``falcoir parse`` to ``app``."""
    app.command(
        "parse",
        help=HELP,
        short_help="Parse Falco alerts (text, JSON, Falcosidekick) and print them normalised.",
        options_metavar="[ALERT ...] [-f FILE|-] [--rules FALCO_RULES.yaml] [-o FORMAT]",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_parse_entry)
