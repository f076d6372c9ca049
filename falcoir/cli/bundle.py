"""`falcoir bundle verify|show|seal`: check and read evidence bundles (directory or
.tar.gz), and seal as incomplete one whose writer died before sealing it.

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
    bundle_app.command("seal")(seal_command)
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
    if not report.sealed:
        raise BundleError(
            "the bundle was never sealed: there are no hashes to verify it against",
            hint=f"seal it as incomplete (recording why) with: falcoir bundle seal {path}",
        )
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


@guarded
def seal_command(
    path: Annotated[
        Path, typer.Argument(help="The unsealed bundle's directory.", show_default=False)
    ],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why it was left unsealed, recorded in bag-info.txt "
            "(default: the collecting process stopped before sealing it).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Seal even though its writer's pid still runs here."),
    ] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """Seal, as incomplete, a bundle whose collection was killed before it was sealed
    (SIGKILL, a crash, power loss): keeps the hash each file was recorded with as it was
    written (a file changed since then fails verify), hashes the others as they are now,
    records files cut short as interrupted, marks it Falcoir-Complete: false with the reason in
    Falcoir-Incomplete-Reason, and writes the .tar.gz. A bundle that was sealed is left
    alone (verify it instead); running it again changes nothing."""
    from falcoir.core.bundle import (
        DEFAULT_SEAL_REASON,
        INFO_INCIDENT,
        BundleError,
        seal_unsealed,
        verify,
    )
    from falcoir.core.incident import IncidentStore
    from falcoir.errors import InputError
    from falcoir.render.console import info, safe, warn

    directory = path.expanduser()
    if directory.is_file():
        raise InputError(
            f"{path} is an archive: archives are written when a bundle is sealed; "
            "give the bundle's directory"
        )
    report = verify(directory)
    if directory.is_dir() and report.sealed:
        if not report.ok:
            raise BundleError(
                f"{path} was sealed, and no longer verifies: sealing it again would hide that",
                hint=f"see what changed with: falcoir bundle verify {path}",
            )
        info(f"{safe(path)} is already sealed; nothing to do")
        doc = {"path": str(path), "sealed": True, "changed": False, "complete": report.complete}
        if output.is_machine:
            from falcoir.render.output import write_machine

            write_machine(doc, output)
        return
    store = IncidentStore()
    incident = store.get(report.info.get(INFO_INCIDENT, "")) if report.info else None
    sealed = seal_unsealed(
        directory,
        reason=reason or DEFAULT_SEAL_REASON,
        actions_path=incident.actions_path if incident else None,
        force=force,
    )
    if incident is not None:
        store.add_bundle(incident, sealed.dir)
    warn(
        f"sealed {safe(sealed.dir)} as INCOMPLETE ({len(sealed.artifacts)} artifacts); "
        f"archive {safe(sealed.archive)}"
    )
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(
            {
                "path": str(sealed.dir),
                "archive": str(sealed.archive),
                "archive_sha256": sealed.archive_sha256,
                "sealed": True,
                "changed": True,
                "complete": False,
                "reason": reason or DEFAULT_SEAL_REASON,
                "artifacts": [a.to_dict() for a in sealed.artifacts],
            },
            output,
        )
