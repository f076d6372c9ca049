"""`falcoir bundle verify|show`: check and read evidence bundles (directory or .tar.gz).

Archives are never extracted blindly: each member is checked before it is copied into a
private temporary directory. ``verify`` exits 0 when every hash matches, 1 otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falcoir.cli.common import OutputOpt, guarded
from falcoir.cli.groups import bundle_app
from falcoir.render.output import OutputFormat

PathArg = Annotated[
    Path, typer.Argument(help="The bundle: its directory or its .tar.gz.", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add the ``bundle`` group to ``app``."""
    bundle_app.command("verify")(verify_command)
    bundle_app.command("show")(show_command)
    app.add_typer(bundle_app, name="bundle")


@guarded
def verify_command(path: PathArg, output: OutputOpt = OutputFormat.TABLE) -> None:
    """Check every hash of a bundle (BagIt manifests and tag manifest) and say what is
    wrong: each changed, missing or unexpected file."""
    from falcoir.core.bundle import BundleError, verify

    report = verify(path)
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(report.to_dict(), output)
    else:
        from falcoir.render.bundle import print_verify

        print_verify(report)
    if not report.ok:
        raise BundleError(
            f"bundle verification failed: {len(report.problems)} problem(s)",
            hint="the evidence was changed or damaged after it was sealed",
        )


@guarded
def show_command(
    path: PathArg,
    output: OutputOpt = OutputFormat.TABLE,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Print the incident report (data/report.md, written by respond) to "
            "stdout instead of the summary; control characters are made visible.",
        ),
    ] = False,
    open_report: Annotated[
        bool,
        typer.Option(
            "--open",
            help="Open the incident report (data/report.html) with the platform's "
            "opener (xdg-open, open); from a .tar.gz it is first copied to a private "
            "temporary file.",
        ),
    ] = False,
) -> None:
    """A readable summary of what a bundle holds: target, operator, each artifact with
    its command, status and size, the actions falcoir took in the cluster, and the
    incident report when respond wrote one (--report prints it, --open opens it).

    Archives are read member by member with path checks, never extracted blindly."""
    from falcoir.errors import InputError

    if report and output.is_machine:
        raise InputError("--report prints the report to stdout: it cannot go with -o")
    if report and open_report:
        raise InputError("give --report or --open, not both")
    if report:
        _print_report(path)
        return
    if open_report:
        _open_report(path)
        return
    from falcoir.core.bundle import summarize

    summary = summarize(path)
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(summary.to_dict(), output)
    else:
        from falcoir.render.bundle import print_show

        print_show(summary)


def _no_report(path: Path, fmt: str) -> Exception:
    from falcoir.core.bundle import BundleError

    return BundleError(
        f"{path} holds no incident report ({fmt})",
        hint="respond writes data/report.md and data/report.html; collect alone does not",
    )


def _print_report(path: Path) -> None:
    import sys

    from falcoir.core.bundle import read_report
    from falcoir.core.text import decode_hostile, neutralize

    data = read_report(path, "markdown")
    if data is None:
        raise _no_report(path, "report.md")
    text = neutralize(decode_hostile(data), keep_newlines=True)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def opener_argv(file: Path, platform: str | None = None) -> list[str] | None:
    """The argv that opens ``file`` with the desktop's default application, ``None``
    when this platform has no opener on PATH."""
    import shutil
    import sys

    platform = platform or sys.platform
    candidates = ["open"] if platform == "darwin" else ["xdg-open", "gio"]
    for name in candidates:
        exe = shutil.which(name)
        if exe is not None:
            return [exe, "open", str(file)] if name == "gio" else [exe, str(file)]
    return None


def _open_report(path: Path) -> None:
    import os
    import subprocess
    import tempfile

    from falcoir.core.bundle import BundleError, find_reports, read_report
    from falcoir.render.console import info, safe

    data = read_report(path, "html")
    if data is None:
        raise _no_report(path, "report.html")
    if path.expanduser().is_dir():
        directory = path.expanduser()
        names = [str(p.relative_to(directory)) for p in (directory / "data").glob("report*")]
        file = (directory / find_reports(names)["html"]).resolve()
    else:
        # Out of the archive into a private file the browser can read after we exit.
        tmp = Path(tempfile.mkdtemp(prefix="falcoir-report-"))
        file = tmp / "report.html"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    argv = opener_argv(file)
    if argv is None:
        raise BundleError(
            "no program to open the report with (xdg-open, open)",
            hint=f"open it yourself: {file}",
        )
    try:
        # Not waited for: a browser may keep the opener running; nothing to read back.
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise BundleError(
            f"could not run {argv[0]}: {exc}", hint=f"open it yourself: {file}"
        ) from exc
    info(f"opened {safe(file)}")
