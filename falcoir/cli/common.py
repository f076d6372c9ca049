"""What every command shares: option types, error mapping, input, confirmation.

:func:`guarded` is the one place where a :class:`~falcoir.errors.FalcoirError` becomes a
message on stderr and an exit code (from :func:`falcoir.errors.exit_code_for`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from falcoir.core.names import validate_namespace, validate_pod_name
from falcoir.errors import ConfirmationRefused, FalcoirError, InputError, exit_code_for
from falcoir.render.output import OutputFormat

if TYPE_CHECKING:
    from falcoir.core.alert import Alert
    from falcoir.core.gateway import ClusterGateway
    from falcoir.core.target import PodRef

P = ParamSpec("P")
R = TypeVar("R")

OutputOpt = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format: table (human), json, jsonl, yaml."),
]
KubeconfigOpt = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        envvar="KUBECONFIG",
        help="Path to the kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
    ),
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")]
AlertArg = Annotated[
    str | None,
    typer.Argument(help="The Falco alert: a text line or a JSON document.", show_default=False),
]
AlertFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Read the alert from FILE ('-' for stdin).", show_default=False
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing anything.")]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Show what would change; the server validates (dryRun=All)."),
]


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Map falcoir errors to a message on stderr and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except FalcoirError as exc:
            from falcoir.render.console import error, safe

            detail = safe(exc.message, keep_newlines=True)
            extra = getattr(exc, "missing", ()) or getattr(exc, "candidates", ())
            if extra:
                detail += "".join(f"\n  - {safe(x)}" for x in extra)
            error(detail, safe(exc.hint) if exc.hint else None)
            raise typer.Exit(int(exit_code_for(exc))) from None
        except KeyboardInterrupt:
            from falcoir.render.console import error

            error("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def read_input_text(alert: str | None, file: Path | None) -> str:
    """The alert text from the argument, a file, or stdin (``-f -``)."""
    if alert is not None and file is not None:
        raise InputError("give the alert either as an argument or with --file, not both")
    if alert is not None:
        return alert
    if file is None:
        raise InputError(
            "no alert given", hint="pass the alert line as an argument, or use -f FILE / -f -"
        )
    from falcoir.core.readlimits import read_bounded

    if str(file) == "-":
        return read_bounded(sys.stdin, "stdin")
    try:
        with file.open(encoding="utf-8", errors="surrogateescape") as fh:
            return read_bounded(fh, str(file))
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc


def read_one_alert(alert: str | None, file: Path | None) -> Alert:
    """Parse the input and return its alert; exactly one alert is expected (the last
    one is used when a file holds several, with a warning)."""
    from falcoir.core.parse import parse_text
    from falcoir.render.console import warn

    report = parse_text(read_input_text(alert, file))
    if not report.alerts:
        reasons = "; ".join(f"line {p.line}: {p.reason}" for p in report.problems[:3])
        raise InputError(
            "no Falco alert found in the input" + (f" ({reasons})" if reasons else ""),
            hint="paste the whole alert line, or the JSON document Falco printed",
        )
    if len(report.alerts) > 1:
        warn(f"{len(report.alerts)} alerts in the input; using the last one")
    return report.alerts[-1]


def parse_pod_ref(text: str | None) -> PodRef | None:
    """``--pod NAMESPACE/NAME`` (or ``NAME``, in namespace ``default``), checked as
    Kubernetes names so a typo is a usage error rather than a pod not found."""
    if text is None:
        return None
    from falcoir.core.target import PodRef

    try:
        ref = PodRef.parse(text)
    except ValueError as exc:
        raise InputError(f"--pod: {exc}", hint="--pod NAMESPACE/NAME") from None
    validate_namespace(ref.namespace)
    validate_pod_name(ref.name)
    return ref


def alert_or_pod(
    alert: str | None, file: Path | None, pod: str | None
) -> tuple[Alert | None, PodRef | None]:
    """The target a command was given: the alert (argument or ``-f``), ``--pod``, or
    both (the pod names the target, the alert says which process)."""
    ref = parse_pod_ref(pod)
    if ref is None and alert is None and file is None:
        raise InputError(
            "no target given", hint="pass the Falco alert, -f FILE, or --pod NAMESPACE/NAME"
        )
    parsed = read_one_alert(alert, file) if (alert is not None or file is not None) else None
    return parsed, ref


def connect(kubeconfig: str | None, context: str | None) -> ClusterGateway:
    """A gateway to the cluster (imports the ``kubernetes`` client only now)."""
    from falcoir.cluster import connect as cluster_connect

    return cluster_connect(kubeconfig=kubeconfig, context=context)


def confirm(question: str, *, yes: bool) -> None:
    """Ask before a change; with no terminal and no ``--yes``, refuse clearly.

    ``question`` names pods and incidents, so it is neutralised here: typer writes it
    to the terminal as is."""
    if yes:
        return
    from falcoir.core.text import neutralize

    question = neutralize(question)
    if not sys.stdin.isatty():
        raise ConfirmationRefused(
            f"{question} needs confirmation, and there is no terminal to ask on",
            hint="re-run with --yes to proceed without asking, or --dry-run to see the plan",
        )
    if not typer.confirm(question, default=False, err=True):
        raise ConfirmationRefused("cancelled: nothing was changed")


def exit_now() -> None:
    """End the ``falcoir`` process at once after a command succeeded (never under a test
    runner): output flushed and exit handlers run (they remove the kubeconfig's
    temporary key files), but the interpreter's teardown of every imported module
    skipped (40-100 ms). Call it only when everything the command writes is written and
    no thread it started still has work to save."""
    import atexit
    import os

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(spec, "name", "") == "falcoir.__main__" or Path(sys.argv[0]).name == "falcoir":
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            return  # (a closed pipe) the usual exit reports it, and runs the handlers
        atexit._run_exitfuncs()
        os._exit(0)
