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
def show_command(path: PathArg, output: OutputOpt = OutputFormat.TABLE) -> None:
    """A readable summary of what a bundle holds: target, operator, each artifact with
    its command, status and size, the actions falcoir took in the cluster."""
    from falcoir.core.bundle import summarize

    summary = summarize(path)
    if output.is_machine:
        from falcoir.render.output import write_machine

        write_machine(summary.to_dict(), output)
    else:
        from falcoir.render.bundle import print_show

        print_show(summary)
