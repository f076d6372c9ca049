"""Sub-command groups shared by several command modules."""

from __future__ import annotations

import typer

lab_app = typer.Typer(
    help="A local Kubernetes API server whose pods are real processes: for tests, "
    "demos and drills.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
bundle_app = typer.Typer(
    help="Verify and inspect evidence bundles.", no_args_is_help=True, rich_markup_mode=None
)
